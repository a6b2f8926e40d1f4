"""Sphinx glue that lets Jupyter Book 1 publish nbdev notebooks.

Two jobs:

1. ``read_nbdev_notebook`` is a MyST-NB custom reader for ``.ipynb`` files. Jupyter Book does
   not understand nbdev's ``#|`` directives: it would print them, show ``#| hide`` cells and
   execute ``#| eval: false`` cells. The reader strips the directive lines from each code cell
   and turns them into the cell tags MyST-NB does understand.
2. After the build, MathJax 3 (from the ``django-static-mathjax`` wheel) is copied into the
   site's ``_static/mathjax`` so that math renders with no network. ``mathjax_path`` in
   ``_config.yml`` points there.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat

DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(?P<body>.*?)\s*$")

# directive -> MyST-NB tag; directives not listed (export, exporti, default_exp ...) are
# simply removed from the displayed source
TAGS = {
    "hide": "remove-cell",
    "eval: false": "skip-execution",
    "echo: false": "remove-input",
    "output: false": "remove-output",
}


def split_directives(source: str) -> tuple[list[str], str]:
    """Split a code cell's leading ``#|`` lines from the code that follows them."""
    lines = source.splitlines()
    directives = []
    while lines and DIRECTIVE.match(lines[0]):
        directives.append(DIRECTIVE.match(lines.pop(0))["body"])
    return directives, "\n".join(lines).strip("\n")


def convert_cell(cell) -> None:
    """Replace a code cell's nbdev directives by MyST-NB tags, in place."""
    directives, code = split_directives(cell.source)
    if not directives:
        return
    tags = cell.metadata.setdefault("tags", [])
    for directive in directives:
        tag = TAGS.get(re.sub(r"\s+", " ", directive.lower()))
        if tag and tag not in tags:
            tags.append(tag)
    if not code and "remove-cell" not in tags:
        tags.append("remove-cell")  # a cell that held only directives (default_exp)
    cell.source = code


def read_nbdev_notebook(text: str) -> nbformat.NotebookNode:
    """MyST-NB reader: parse a notebook and translate its nbdev directives into tags."""
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            convert_cell(cell)
    return nb


def mathjax_source() -> Path:
    """The MathJax 3 ``es5`` tree shipped inside the ``django-static-mathjax`` wheel."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax is missing: install django-static-mathjax (see constraints.txt)")
    tree = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (tree / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax tree not found at {tree}")
    return tree


def copy_mathjax(app, exception) -> None:
    """After a successful HTML build, serve MathJax from ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    shutil.copytree(mathjax_source(), Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    mathjax_source()  # fail at the start of the build, not at its end
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
