"""The JSON file of a benchmark: its figures, with the command and the machine that produced them."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def write_results(path: str | Path, command: str, fields: dict[str, Any], *, quiet: bool = False) -> Path:
    """Write ``{"command", "machine", "cpus", **fields}`` to ``path`` as indented JSON (parents created)
    and print ``wrote PATH`` unless ``quiet``; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": platform.platform(), "cpus": os.cpu_count(), **fields}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    if not quiet:
        print(f"wrote {out}")
    return out
