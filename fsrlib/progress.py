"""Progress bars for long training, switched on by whoever asked for progress.

``fsrlib.experiment.run(cfg, progress=True)`` (the CLI without ``--quiet``) shows a bar for every GAN, ISR network
and student it trains; called directly, the trainers stay quiet unless wrapped in :func:`shown`::

    with shown(True):
        train_fsrgan(features, config)

The switch is a context variable, so it needs no argument threaded through every method's signature and never
enters a config (a config is a cache key: showing a bar must not retrain a model).
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

_SHOWN: contextvars.ContextVar[bool] = contextvars.ContextVar("fsrlib_progress_shown", default=False)


@contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Show (or, with ``enabled=False``, hide) the training bars of everything run inside the block."""
    token = _SHOWN.set(bool(enabled))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def is_shown() -> bool:
    return _SHOWN.get()


def bar(total: int, desc: str, unit: str = "step") -> tqdm:
    """A bar of ``total`` units, disabled unless a caller asked for progress (:func:`shown`); close it when done."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not _SHOWN.get(), leave=False, dynamic_ncols=True)
