"""The engine: one run of a strategy against an evaluator, journaled and resumable.

Modules: :mod:`.scheduler` (Ray-free ask/tell, de-duplication, budgets, journal lines),
:mod:`.runner` (the only module importing Ray: actors, the ``ray.wait`` loop, the in-process
loop), :mod:`.simulation` (simulated clock), :mod:`.checkpoint` (journal and snapshots),
:mod:`.summary` (``summary.json``), :mod:`.progress` (the progress bar).
"""

from __future__ import annotations

__all__: list[str] = []
