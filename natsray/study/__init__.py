"""Studies: sweeps of seeds x grid points as parallel Ray runs, resumable, with a comparative report.

:mod:`.grid` plans the runs, :mod:`.sweep` executes them (the study layer and the engine's
runner are the only modules that import Ray), :mod:`.report` and :mod:`.plots` compare them.
See ``docs/sweeps.md``.
"""

from __future__ import annotations

from natsray.study.grid import SweepPlan, load_plan, plan_runs, sweep_from_config
from natsray.study.sweep import run_sweep

__all__ = ["SweepPlan", "load_plan", "plan_runs", "run_sweep", "sweep_from_config"]
