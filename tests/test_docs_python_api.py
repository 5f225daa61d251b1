"""Every code block of docs/python-api.md, run for real, section by section (the convention of
tests/test_docs_extending.py: each ``## `` section in a fresh directory, ``# file:`` blocks written,
``python`` blocks executed in one subprocess, ``bash`` blocks' ``$ `` lines run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_docs_extending import REPO, run_section, sections

SECTIONS = sections((REPO / "docs" / "python-api.md").read_text(encoding="utf-8"))


def test_the_page_has_its_sections() -> None:
    titles = [title for title, _ in SECTIONS]
    assert titles == ["A search with your own scoring function", "Reading and continuing a run", "Sweeps"]


@pytest.mark.ray
@pytest.mark.parametrize(("title", "blocks"), SECTIONS, ids=[title for title, _ in SECTIONS])
def test_section_runs(title: str, blocks: list[tuple[str, str]], tmp_path: Path) -> None:
    run_section(title, blocks, tmp_path)


def documented_signatures(text: str) -> dict[str, str]:
    """``name(params)`` written in backticks for the front doors' functions and methods, by name (a method
    written ``.resume(...)`` in the table row of ``Sweep.path`` is ``Sweep.resume``)."""
    import re

    found: dict[str, str] = {}
    pattern = r"`(natsray\.|Run\.|Sweep\.|\.)?(run|sweep|resume)\(([^`]*)\)"
    for match in re.finditer(pattern, text):
        dotted, name, params = match.groups()
        if not params.startswith("config," if name != "resume" else "*,"):
            continue  # a call in the prose (``natsray.run(evaluator=fn)``), not the signature
        if dotted == ".":  # the row's first name says whose
            row = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
            dotted = "Sweep." if "`Sweep." in row else "Run."
        elif dotted is None and name == "resume":  # in the members table under "`Run` (...)"/"`Sweep` ..."
            before = text[: match.start()]
            dotted = "Sweep." if before.rfind("\n`Sweep`") > before.rfind("\n`Run`") else "Run."
        found.setdefault((dotted or "").replace("natsray.", "") + name, params)
    return found


def parameters(params: str) -> dict[str, object]:
    """``a, *, b=None, c=()`` as ``{name: default}`` (``...`` for none)."""
    import ast

    tree = ast.parse(f"def f({params.replace(chr(10), ' ')}): pass")
    args = tree.body[0].args  # type: ignore[attr-defined]
    named = {a.arg: ... for a in args.args}
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        named[arg.arg] = ... if default is None else ast.literal_eval(default)
    return named


@pytest.mark.parametrize("page", ["api.md", "python-api.md"])
def test_the_documented_signatures_are_the_real_ones(page: str) -> None:
    """Every ``run(...)``, ``sweep(...)`` and ``resume(...)`` signature the page writes has the real names and
    defaults (``progress`` was written ``True`` after its default became None)."""
    import inspect

    import natsray

    real = {"run": natsray.run, "sweep": natsray.sweep, "Run.resume": natsray.Run.resume}
    real["Sweep.resume"] = natsray.Sweep.resume
    documented = documented_signatures((REPO / "docs" / page).read_text(encoding="utf-8"))
    assert {"run", "sweep"} <= set(documented)
    for name, params in documented.items():
        signature = inspect.signature(real[name])
        expected = {
            key: ... if value.default is inspect.Parameter.empty else value.default
            for key, value in signature.parameters.items()
            if key != "self"
        }
        written = parameters(params)
        assert written == {key: expected[key] for key in written}, (page, name)
        assert set(written) == set(expected), (page, name)
