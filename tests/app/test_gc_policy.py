"""Garbage with Qt objects is collected on the UI thread only (a worker's gc.collect() deadlocked the window)."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtWidgets import QMenu, QWidget


def _cyclic_widget():
    """A widget (with a QMenu child, as in the hang) kept alive only by a reference cycle."""
    w = QWidget()
    w.menu = QMenu(w)
    w.me = w  # the cycle
    return weakref.ref(w)


def test_a_worker_thread_collects_nothing_and_the_ui_thread_collects_it(qtbot):
    from ctstudio.app.gc_policy import collect_on_ui_thread

    collect_on_ui_thread(qtbot._request.getfixturevalue("qapp"))
    assert not gc.isenabled()
    ref = _cyclic_widget()
    assert ref() is not None
    found = []
    t = threading.Thread(target=lambda: found.append(gc.collect()))
    t.start()
    t.join()
    assert found == [0] and ref() is not None  # nothing destroyed off the UI thread
    qtbot.waitUntil(lambda: ref() is None, timeout=5000)  # the UI thread's timer collected it
