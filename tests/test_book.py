"""The book as a whole: the package equals the notebooks' export, notebooks are committed clean,
every chapter is listed in the table of contents, and every chapter executes without error."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
sys.path.insert(0, str(NBS / "_ext"))
from mlpbook_book import read_nbdev_notebook  # noqa: E402  (the book's own directive reader)

NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb"))
ALLOWED_NB_METADATA = {"kernelspec", "language_info"}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix == ".py"}


def test_package_equals_what_the_notebooks_export(tmp_path):
    """nbdev_export into a scratch copy must reproduce mlpbook/ exactly, new files included."""
    shutil.copy(ROOT / "settings.ini", tmp_path)
    shutil.copytree(NBS, tmp_path / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_ext"))
    exe = Path(sys.executable).with_name("nbdev_export")
    subprocess.run([str(exe)], cwd=tmp_path, check=True, capture_output=True, text=True)
    exported, committed = _files(tmp_path / "mlpbook"), _files(ROOT / "mlpbook")
    differ = sorted(k for k in exported.keys() & committed.keys() if exported[k] != committed[k])
    assert not differ, f"mlpbook/ differs from the export of nbs/: {differ}; run nbdev_export"
    assert exported.keys() == committed.keys(), (
        f"only in the export: {sorted(exported.keys() - committed.keys())}; "
        f"only in mlpbook/: {sorted(committed.keys() - exported.keys())}; run nbdev_export")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    """No outputs, no execution counts, no metadata beyond the kernel."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = [f"notebook metadata {k!r}" for k in nb.get("metadata", {}) if k not in ALLOWED_NB_METADATA]
    for i, cell in enumerate(nb["cells"]):
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
        if cell.get("metadata"):
            problems.append(f"cell {i} has metadata {sorted(cell['metadata'])}")
        if not cell.get("id"):
            problems.append(f"cell {i} has no id")
    assert not problems, f"{path.name}: " + "; ".join(problems) + " (clean it with nbdev_clean)"


def test_every_chapter_is_in_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {toc["root"]}
    for part in toc["parts"]:
        listed |= {c["file"] for c in part["chapters"]}
    chapters = {f"nbs/{p.stem}" for p in NOTEBOOKS}
    assert chapters == listed, f"not listed: {sorted(chapters - listed)}; missing: {sorted(listed - chapters)}"


def executable(path: Path) -> nbformat.NotebookNode:
    """The notebook as the book executes it: directives read, `#| eval: false` cells dropped."""
    nb = read_nbdev_notebook(path.read_text(encoding="utf-8"))
    nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    """Run the chapter top to bottom in a fresh kernel, as the book build does."""
    from nbclient import NotebookClient
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(executable(path), timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NBS)}})
    client.execute()


def test_reader_turns_directives_into_tags():
    """The book's reader: directive lines vanish, hide/eval/echo become MyST-NB tags."""
    nb = nbformat.v4.new_notebook()
    sources = ["#| default_exp x", "#| export\ndef f(): pass", "#| hide\nimport os",
               "#| hide\n#| eval: false\nnbdev_export()", "#|echo: false\nprint(1)", "x = 1"]
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    cells = read_nbdev_notebook(nbformat.writes(nb)).cells
    tags = [c.metadata.get("tags", []) for c in cells]
    assert [c.source for c in cells] == ["", "def f(): pass", "import os", "nbdev_export()", "print(1)", "x = 1"]
    assert tags == [["remove-cell"], [], ["remove-cell"], ["remove-cell", "skip-execution"],
                    ["remove-input"], []]


def test_readme_example_runs():
    """The package example in the README runs as written and learns the digits."""
    import contextlib
    import io
    import re as _re
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = _re.search(r"```python\n(.*?)```", readme, _re.S)[1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    loss, acc = eval(out.getvalue().strip().splitlines()[-1].replace("np.float64", ""))
    assert acc > 0.9, out.getvalue()
