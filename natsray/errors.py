"""The error of bad evaluator input, at the bottom of the layering: the evaluators raise it, and so do
the dataset readers they use (``natsray.datasets``), which sit below them.

Import it as ``natsray.evaluators.EvaluatorError`` (or ``natsray.evaluators.base.EvaluatorError``):
the same class.
"""

from __future__ import annotations

__all__ = ["EvaluatorError"]


class EvaluatorError(ValueError):
    """Bad evaluator configuration or input (missing archive, malformed dataset, unknown metric).

    Its message is one line naming the field, path or value and what was expected.
    """
