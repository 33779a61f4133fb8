"""What every long job shares: one cancel token, one progress-event schema, one way to run a job.

A job is a plain generator function (k-diffusion's callback dict, napari's generator workers): what it
``yield``s is progress, what it ``return``s is the result, what it raises is the error. It checks one
:class:`CancelToken` between steps through :func:`check_cancel`. Core loops (a sampler, the block tiler,
the trainer) take ``callback=`` and ``cancel=`` and report through :class:`Progress`, so every event in
ctstudio has the same shape:

``{"job": str, "stage": str, "done": int, "total": int | None, "unit": str, "seconds": float,
"eta": float | None, ...payload}``

- ``job``: what runs (``"generate"``, ``"convert"``, ``"calibrate"``, ``"train"``, ``"load"``,
  ``"sample"``, ``"blocks"``, ...);
- ``stage``: where it is (``"start"``, ``"slice"``, ``"step"``, ``"block"``, ``"checkpoint"``, ``"done"``...);
- ``done`` of ``total`` ``unit``\\ s (``total`` is ``None`` where it is not known yet);
- ``seconds``: wall time since the job started; ``eta``: seconds left, estimated from the rate so far
  (``None`` before the first unit is done);
- anything else is the job's payload (a finished slice and its target index, a loss, a path...).

This module sits at the bottom of the house (beside :mod:`ctstudio.errors`): no numpy, no torch, no Qt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from ctstudio.errors import Cancelled

#: the keys every event carries
EVENT_KEYS = ("job", "stage", "done", "total", "unit", "seconds", "eta")


class CancelToken:
    """A thread-safe cancel flag: the UI (or a signal handler) sets it, the job checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def __repr__(self) -> str:
        return f"CancelToken(set={self.is_set()})"


def is_cancelled(cancel: Any) -> bool:
    """``cancel`` is ``None``, a :class:`CancelToken` (or anything with ``is_set()``) or a callable."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    if callable(cancel):
        return bool(cancel())
    raise TypeError(f"cancel must be None, a CancelToken or a callable, not {type(cancel).__name__}")


def check_cancel(cancel: Any, what: str) -> None:
    """Raise :class:`~ctstudio.errors.Cancelled` (``what`` says how far the job got) if ``cancel`` is set."""
    if is_cancelled(cancel):
        raise Cancelled(what)


class Progress:
    """Builds the events of one job: ``Progress("convert", total=64, unit="slice").event("slice", 3)``.

    ``callback`` (optional) receives every event built, so a core loop can report through it directly.
    """

    def __init__(self, job: str, total: int | None = None, unit: str = "step",
                 callback: Callable[[dict], Any] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.job = job
        self.total = total
        self.unit = unit
        self.callback = callback
        self._clock = clock
        self._t0 = clock()
        self._done0 = 0  # units already done when the clock started (a resumed run)

    def restart_clock(self, done: int = 0) -> None:
        """Count the rate from now on, with ``done`` units already done (a resumed training run)."""
        self._t0 = self._clock()
        self._done0 = int(done)

    @property
    def seconds(self) -> float:
        return self._clock() - self._t0

    def eta(self, done: int) -> float | None:
        new = done - self._done0
        if self.total is None or new <= 0:
            return None
        return max(0.0, self.seconds / new * (self.total - done))

    def event(self, stage: str, done: int = 0, **payload) -> dict:
        ev = {"job": self.job, "stage": stage, "done": int(done), "total": self.total, "unit": self.unit,
              "seconds": self.seconds, "eta": self.eta(done), **payload}
        if self.callback is not None:
            self.callback(ev)
        return ev


def validate_event(ev: Any) -> dict:
    """``ev`` if it follows the schema, else ``ValueError`` naming what is wrong (tests and the train tab)."""
    if not isinstance(ev, dict):
        raise ValueError(f"an event is a dict, not {type(ev).__name__}")
    missing = [k for k in EVENT_KEYS if k not in ev]
    if missing:
        raise ValueError(f"event {ev.get('job')}/{ev.get('stage')} lacks {', '.join(missing)}")
    if not isinstance(ev["job"], str) or not isinstance(ev["stage"], str) or not isinstance(ev["unit"], str):
        raise ValueError("job, stage and unit are strings")
    if isinstance(ev["done"], bool) or not isinstance(ev["done"], int) or ev["done"] < 0:
        raise ValueError(f"done is a count, not {ev['done']!r}")
    if ev["total"] is not None and (not isinstance(ev["total"], int) or ev["total"] < 0):
        raise ValueError(f"total is a count or None, not {ev['total']!r}")
    if not isinstance(ev["seconds"], (int, float)) or ev["seconds"] < 0:
        raise ValueError(f"seconds is a duration, not {ev['seconds']!r}")
    if ev["eta"] is not None and (not isinstance(ev["eta"], (int, float)) or ev["eta"] < 0):
        raise ValueError(f"eta is a duration or None, not {ev['eta']!r}")
    return ev


def run_job(gen: Generator[dict, None, Any], on_event: Callable[[dict], Any] | None = None) -> Any:
    """Drive a job generator to its end, handing each event to ``on_event``; return the job's result."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(ev)
