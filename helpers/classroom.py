"""``make student`` and ``make html``: copies of the series for a classroom.

``python -m helpers.classroom student`` writes the notebooks without their ``solution``-tagged
cells (and without outputs) to ``student/``, with nbconvert's TagRemovePreprocessor.
``python -m helpers.classroom html`` turns the executed notebooks of the last ``make run``
(``<output_dir>/notebooks/``) into a static site in ``<output_dir>/html/``: one page per notebook
(nbconvert's HTMLExporter, figures inline) and an index with the README's notebook table.
Described in TEACHING.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from helpers import config
from helpers.errors import LearnerError
from helpers.run import NOTEBOOKS, numbered_notebooks

PROJECT = NOTEBOOKS.parent
SOLUTION_TAG = "solution"


def student_copies(source: Path = NOTEBOOKS, target: Path = PROJECT / "student") -> dict[Path, int]:
    """Returns {written copy: solution cells removed} for every numbered notebook in ``source``.

    Each copy has no cell tagged ``solution`` and no outputs; ``source`` is not changed.
    """
    import nbformat
    from nbconvert import NotebookExporter
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor
    from traitlets.config import Config

    settings = Config()
    settings.TagRemovePreprocessor.remove_cell_tags = {SOLUTION_TAG}
    settings.TagRemovePreprocessor.enabled = True
    exporter = NotebookExporter(config=settings)
    exporter.register_preprocessor(TagRemovePreprocessor(config=settings), enabled=True)
    exporter.register_preprocessor(ClearOutputPreprocessor(), enabled=True)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in numbered_notebooks(source):
        notebook = nbformat.read(path, as_version=4)
        tagged = sum(SOLUTION_TAG in cell.metadata.get("tags", []) for cell in notebook.cells)
        body, _ = exporter.from_notebook_node(notebook)
        copy = target / path.name
        copy.write_text(body, encoding="utf-8")
        written[copy] = tagged
    return written


def notebook_table(readme: str, pages: dict[str, str]) -> str:
    """Returns the README's "The notebooks" section with links to ``pages`` ({notebook: page}).

    Links to notebooks that have no page become plain text.
    """
    match = re.search(r"^## The notebooks\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    section = match.group(1) if match else ""

    def relink(link: re.Match) -> str:
        text, target = link.group(1), Path(link.group(2)).name
        return f"[{text}]({pages[target]})" if target in pages else f"{text} (not run)"

    return re.sub(r"\[([^\]]+)\]\((?:\.\./)?notebooks/([^)]+\.ipynb)\)", relink, section)


def html_site(executed: Path, target: Path, readme: str) -> Path:
    """Returns the index page of a static site made from the executed notebooks in ``executed``.

    One page per notebook (nbconvert's HTMLExporter, lab template, figures inline as data URIs),
    and ``index.html`` with the README's notebook table linking to them.
    """
    import mistune
    from nbconvert import HTMLExporter

    notebooks = numbered_notebooks(executed)
    if not notebooks:
        raise LearnerError(
            f"No executed notebooks in {executed}. Run the series first with make run "
            "(same TL_* settings), then make html."
        )
    target.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages = {}
    for path in notebooks:
        body, _ = exporter.from_filename(str(path))
        page = f"{path.stem}.html"
        (target / page).write_text(body, encoding="utf-8")
        pages[path.name] = page
    table = mistune.create_markdown(plugins=["table"])(notebook_table(readme, pages))
    title = "Transfer learning with Keras: cats vs dogs"
    index = target / "index.html"
    index.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}</style></head>\n"
        f"<body><h1>{title}</h1>\n<p>The notebooks as executed by <code>make run</code> in "
        f"{executed}.</p>\n{table}</body></html>\n",
        encoding="utf-8",
    )
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["student", "html"])
    args = parser.parse_args(argv)
    try:
        if args.what == "student":
            for copy, removed in student_copies().items():
                print(f"{copy.relative_to(PROJECT)}: {removed} solution cells removed")
            return 0
        cfg = config.load()
        readme = (PROJECT / "README.md").read_text(encoding="utf-8")
        index = html_site(cfg.output_dir / "notebooks", cfg.output_dir / "html", readme)
    except LearnerError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"open {index} (a static site: copy the folder to share it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
