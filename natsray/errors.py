"""The error of bad evaluator input, at the bottom of the layering: the evaluators raise it, and so do
the dataset readers they use (``natsray.datasets``), which sit below them.

Import it as ``natsray.evaluators.EvaluatorError`` (or ``natsray.evaluators.base.EvaluatorError``):
the same class.
"""

from __future__ import annotations

__all__ = ["EvaluatorError", "EvaluatorSetupError"]


class EvaluatorError(ValueError):
    """Bad evaluator configuration or input (missing archive, malformed dataset, unknown metric).

    Its message is one line naming the field, path or value and what was expected.
    """


class EvaluatorSetupError(RuntimeError):
    """An evaluator's own code raised while it was being built: its ``__init__`` or ``setup``.

    One line naming the class, the method and the exception
    (``evaluator mylab.evals:Broken: __init__ raised KeyError: 'licence'``); the exception itself,
    with its traceback, is the ``__cause__`` (from a Ray actor: its traceback as text). Not bad
    input (an :class:`EvaluatorError` raised there is passed on as it is): the CLI reports it as a
    failure, exit code 1, and ``NATSRAY_DEBUG=1`` shows the traceback.
    """
