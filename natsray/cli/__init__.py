"""The ``natsray`` command line: run | resume | report | export-table | validate | show | measure-latency |
components.

Exit codes: 0 success, 2 bad input (one line on stderr; also a ``resume --set budget.*``
that cannot run longer because another budget is used up), 1 failure during the run (one
line; ``NATSRAY_DEBUG=1`` shows the traceback) or a finished run (sweep) in which more than half
of the evaluations (runs) failed, 130 interrupted (one line saying how to continue), 141 (128 + SIGPIPE, as
``cat`` or ``grep``) when the reader of stdout went away (``natsray show ... | head -1``),
silently, after the command wrote its files. A closed stdout or stderr (``>&-``, ``2>&-``) or a
stderr that cannot be written (``2>/dev/full``) changes nothing but what is shown: the command runs
and exits as it would have (:mod:`.pipes`). Ray and torch are imported only by the commands that
need them, so ``--help`` and ``validate`` stay fast.

The modules: :mod:`.parser` (the argparse tree), one per command family (:mod:`.runs`: run and
resume of one run; :mod:`.sweeps`: a sweep's run and resume; :mod:`.validate`; :mod:`.report`;
:mod:`.cells`: show, export-table, measure-latency; :mod:`.components`), and below them
:mod:`.inputs` (the user's inputs checked), :mod:`.outcome` (a finished run's exit code),
:mod:`.errors` (one line and an exit code for whatever stops a command) and :mod:`.pipes`
(stdout whose reader left, stderr that cannot be written, standard streams the shell closed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from natsray.cli.errors import UsageError, exit_code, one_line_warnings
from natsray.cli.inputs import parse_seeds
from natsray.cli.parser import build_parser
from natsray.cli.pipes import ClosedPipeGuard, LostStreamGuard, open_closed_streams

__all__ = ["UsageError", "main", "parse_seeds"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``natsray`` command line; returns the exit code."""
    one_line_warnings()
    open_closed_streams()
    guard, errors = ClosedPipeGuard(sys.stdout), LostStreamGuard(sys.stderr)
    sys.stdout, sys.stderr = guard, errors
    try:
        return exit_code(lambda: _dispatch(argv, guard))
    finally:
        errors.flush()  # a write that fails, fails here: dropped, not at the interpreter's exit
        sys.stdout, sys.stderr = guard.stream, errors.stream


def _dispatch(argv: Sequence[str] | None, guard: ClosedPipeGuard) -> int:
    """Parse the arguments and run the command they name: its exit code (141 once stdout's reader left)."""
    args = build_parser().parse_args(argv)
    code = args.handler(args)
    sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    return 128 + 13 if guard.reader_gone and code == 0 else code
