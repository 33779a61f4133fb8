"""Garbage is collected on the UI thread only.

A Qt widget that ends up in a Python reference cycle (pyqtgraph plots, lambdas connected to signals) is
destroyed by whichever thread runs the cycle collector. If that is a worker thread (Python's automatic
collection runs in the thread that allocates; statsmodels' Holm correction calls ``gc.collect()`` itself), the
widget's C++ destructor runs off the UI thread, which Qt forbids, and PySide6 can deadlock there: a study
analysis in the Results tab hung the window that way (seen in the test suite: a QMenu destroyed inside
``multipletests``' ``gc.collect()`` in an analysis worker).

:func:`collect_on_ui_thread` turns the automatic collector off, makes ``gc.collect()`` called from any other
thread a no-op, and collects from a timer on the UI thread instead.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer

_REAL_COLLECT = gc.collect
_INSTALLED: dict[str, object] = {}


def _collect_on_ui_thread_only(generation: int = 2) -> int:
    if threading.current_thread() is threading.main_thread():
        return _REAL_COLLECT(generation)
    return 0  # a worker asked: the UI thread's timer collects soon


def collect_on_ui_thread(app: QObject, interval_ms: int = 1000) -> QTimer:
    """Install the policy for ``app`` (call on the UI thread, once; later calls return the same timer)."""
    timer = _INSTALLED.get("timer")
    if isinstance(timer, QTimer):
        return timer
    gc.disable()
    gc.collect = _collect_on_ui_thread_only
    timer = QTimer(app)
    timer.setObjectName("ctstudio-gc")
    timer.timeout.connect(lambda: _REAL_COLLECT(0))  # the young generation every interval ...
    timer.start(interval_ms)
    full = QTimer(app)
    full.timeout.connect(lambda: _REAL_COLLECT(2))  # ... and everything every 30 intervals
    full.start(interval_ms * 30)
    _INSTALLED.update(timer=timer, full=full)
    return timer
