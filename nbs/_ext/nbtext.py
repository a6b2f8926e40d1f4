"""Edit a chapter as plain text and write it back as a clean notebook.

Notebooks are the source of the book and the package, but JSON is awkward to edit and to
review. This script converts a notebook to a plain-text "percent" file and back:

    python nbs/_ext/nbtext.py totext nbs/03_linear.ipynb            # prints the text form
    python nbs/_ext/nbtext.py tonb chapter.py nbs/03_linear.ipynb    # writes a clean notebook
    python nbs/_ext/nbtext.py run nbs/03_linear.ipynb [figdir]       # executes, prints outputs

In the text form a line ``# %%`` starts a code cell and ``# %% [markdown]`` a Markdown cell;
Markdown is written as is (not commented out). The notebook written back has no outputs, no
execution counts and no metadata but the kernel, and each cell's id is a hash of its content,
so a cell that did not change keeps its id (nbdev's export markers cite cell ids).
"""
from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?\s*$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def to_text(nb) -> str:
    """The percent-format text of a notebook's cells."""
    parts = []
    for cell in nb.cells:
        header = "# %% [markdown]" if cell.cell_type == "markdown" else "# %%"
        parts.append(f"{header}\n{cell.source.strip()}\n")
    return "\n".join(parts)


def parse_text(text: str) -> list[tuple[str, str]]:
    """Split percent-format text into (cell_type, source) pairs."""
    cells, kind, lines = [], None, []
    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            if kind is not None:
                cells.append((kind, "\n".join(lines).strip("\n")))
            kind, lines = ("markdown" if m["md"] else "code"), []
        elif kind is not None:
            lines.append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    if kind is not None:
        cells.append((kind, "\n".join(lines).strip("\n")))
    return [c for c in cells if c[1].strip()]


def cell_id(stem: str, kind: str, source: str, taken: set[str]) -> str:
    """A stable id: a hash of the cell's content, made unique within the notebook."""
    base = hashlib.sha1(f"{stem}\0{kind}\0{source}".encode()).hexdigest()[:10]
    cid, n = base, 1
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    taken.add(cid)
    return cid


def to_notebook(text: str, stem: str):
    """A clean nbformat 4.5 notebook from percent-format text."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    taken: set[str] = set()
    for kind, source in parse_text(text):
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = new(source)
        cell.id = cell_id(stem, kind, source, taken)
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def run(path: str, figdir: str | None = None) -> int:
    """Execute a notebook as the book does and print each cell's outputs (figures to figdir)."""
    import base64
    import time

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    sys.path.insert(0, str(Path(__file__).parent))
    from mlpbook_book import read_nbdev_notebook

    nb = read_nbdev_notebook(Path(path).read_text(encoding="utf-8"))
    nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
    start, status = time.time(), 0
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    except CellExecutionError as err:
        print(err)
        status = 1
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for k, out in enumerate(cell.get("outputs", [])):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            if text:
                print(f"--- cell {i} [{out.output_type}]\n{text.rstrip()}")
            png = out.get("data", {}).get("image/png")
            if png and figdir:
                Path(figdir).mkdir(parents=True, exist_ok=True)
                target = Path(figdir) / f"{Path(path).stem}_{i}_{k}.png"
                target.write_bytes(base64.b64decode(png))
                print(f"--- cell {i} figure -> {target}")
    print(f"executed in {time.time() - start:.1f} s")
    return status


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "run":
        return run(*argv[1:])
    if len(argv) == 2 and argv[0] == "totext":
        sys.stdout.write(to_text(nbformat.read(argv[1], as_version=4)))
        return 0
    if len(argv) == 3 and argv[0] == "tonb":
        target = Path(argv[2])
        nb = to_notebook(Path(argv[1]).read_text(encoding="utf-8"), target.stem)
        target.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
