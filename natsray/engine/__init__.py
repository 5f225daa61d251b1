"""The engine: one run of a strategy against an evaluator, journaled and resumable.

Modules: :mod:`.scheduler` (Ray-free ask/tell, de-duplication, budgets, journal lines),
:mod:`.runner` (actors, the ``ray.wait`` loop, the in-process loop), :mod:`.cluster` (starting or
joining Ray in bounded time, resource checks; with ``runner`` the only modules importing Ray),
:mod:`.simulation` (simulated clock), :mod:`.checkpoint` (journal and snapshots),
:mod:`.summary` (``summary.json``), :mod:`.progress` (the progress bar).
"""

from __future__ import annotations

__all__: list[str] = []
