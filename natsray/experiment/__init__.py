"""Experiment-facing modules: config tree and YAML (:mod:`.config`, :mod:`.typed_yaml`), reading
run directories (:mod:`.run_data`), reports (:mod:`.report`), plots (:mod:`.plots`) and the
``natsray`` command line (:mod:`.cli`)."""

from __future__ import annotations

__all__: list[str] = []
