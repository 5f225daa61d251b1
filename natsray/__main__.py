"""``python -m natsray`` = the ``natsray`` command."""

from __future__ import annotations

import sys

from natsray.cli import main

if __name__ == "__main__":
    sys.exit(main())
