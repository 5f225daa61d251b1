"""Reading and showing one run: run directories (:mod:`.run_data`), the journal as a table
(:mod:`.journal_table`), reports (:mod:`.report`), plots (:mod:`.plots`) and latency measurement
(:mod:`.latency`)."""

from __future__ import annotations

__all__: list[str] = []
