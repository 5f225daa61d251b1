"""User callbacks and the shipped experiment-tracker loggers (``docs/callbacks.md``).

:class:`Callback` is the public hook API (on the driver: ``on_run_start``, ``on_result``,
``on_run_end``, ``on_run_error``, ``on_sweep_start``, ``on_sweep_end``). The loggers
:class:`~natsray.callbacks.mlflow.MLflowLogger` (``callbacks: [mlflow]``) and
:class:`~natsray.callbacks.tensorboard.TensorBoardLogger` (``callbacks: [tensorboard]``) need the
``natsray[mlflow]`` / ``natsray[tensorboard]`` extras and are imported only when selected; installed
packages may register more short names under the entry-point group ``natsray.callbacks``. This
package sits below the config (which parses the ``callbacks`` key with :class:`CallbackSpec`) and
the engine (which calls the hooks); it imports only records and the registry.
"""

from __future__ import annotations

from natsray.callbacks.base import (
    CALLBACKS,
    ENTRY_POINT_GROUP,
    REGISTRY,
    Callback,
    CallbackList,
    CallbackSpec,
    callback_class,
)

__all__ = [
    "CALLBACKS",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Callback",
    "CallbackList",
    "CallbackSpec",
    "callback_class",
]
