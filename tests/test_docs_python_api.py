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
