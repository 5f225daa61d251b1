"""Every code block of docs/callbacks.md, run for real, section by section (the convention of
tests/test_docs_extending.py: each ``## `` section in a fresh directory, ``# file:`` blocks written,
``python`` blocks executed in one subprocess, ``bash`` blocks' ``$ `` lines run). The loggers' sections need
the ``mlflow`` / ``tensorboard`` extras (the ``test`` extra installs both)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_docs_extending import REPO, run_section, sections

SECTIONS = sections((REPO / "docs" / "callbacks.md").read_text(encoding="utf-8"))
NEEDS = {"MLflow": "mlflow", "TensorBoard": "tensorboard"}
# sections with something to run ("Without the extra" shows a line tests/test_callbacks.py checks exactly)
RUNNABLE = [(t, b) for t, b in SECTIONS if any(language in ("python", "bash") for language, _ in b)]


def test_the_page_has_its_sections() -> None:
    titles = [title for title, _ in SECTIONS]
    assert titles == ["The hooks", "Your own callback", "MLflow", "TensorBoard", "Without the extra"]


@pytest.mark.parametrize(("title", "blocks"), RUNNABLE, ids=[title for title, _ in RUNNABLE])
def test_section_runs(title: str, blocks: list[tuple[str, str]], tmp_path: Path) -> None:
    if title in NEEDS and importlib.util.find_spec(NEEDS[title]) is None:
        pytest.skip(f"needs the {NEEDS[title]} extra")
    run_section(title, blocks, tmp_path)
