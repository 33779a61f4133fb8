"""Long work off the UI thread: generator functions run in a worker, their events become signals.

A job is a plain generator function (it never touches widgets): what it ``yield``s is progress
(a dict, k-diffusion style), what it ``return``s is the result, what it raises is the error.
:func:`start_worker` runs it on Qt's thread pool through superqt's ``GeneratorWorker`` and connects
``on_progress`` / ``on_result`` / ``on_error`` / ``on_finished``, which run on the UI thread.
A worker can be cancelled with ``worker.quit()`` (the job stops at its next ``yield``).

Tests await a worker with ``qtbot.waitSignal(worker.finished)``; :func:`wait_for_workers` drains
all of them (the main window calls it when it closes, so no thread is left running).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool
from superqt.utils import GeneratorWorker, create_worker

_LIVE: set = set()


def start_worker(job: Callable[..., Generator], *args, on_result: Callable | None = None,
                 on_error: Callable[[BaseException], Any] | None = None, on_progress: Callable | None = None,
                 on_finished: Callable | None = None, **kwargs) -> GeneratorWorker:
    """Start ``job(*args, **kwargs)`` (a generator function) in a worker thread and return the worker."""
    connect: dict[str, Callable] = {}
    if on_result is not None:
        connect["returned"] = on_result
    if on_error is not None:
        connect["errored"] = on_error
    if on_progress is not None:
        connect["yielded"] = on_progress
    worker = create_worker(job, *args, _start_thread=False, _connect=connect,
                           _worker_class=GeneratorWorker, _ignore_errors=on_error is not None, **kwargs)
    _LIVE.add(worker)

    def done() -> None:
        _LIVE.discard(worker)
        if on_finished is not None:
            on_finished()

    worker.finished.connect(done)
    worker.start()
    return worker


def running_workers() -> int:
    return len(_LIVE)


def wait_for_workers(timeout_ms: int = 30000) -> bool:
    """Ask every live worker to stop and wait for the thread pool to drain."""
    for w in list(_LIVE):
        try:
            w.quit()
        except RuntimeError:
            pass
    return QThreadPool.globalInstance().waitForDone(timeout_ms)


# -- jobs (plain generators: no Qt) -----------------------------------------------------------------
def load_volume_job(path, series_uid: str | None = None):
    """Read a volume with :func:`ctstudio.io.read_volume`; yields progress dicts, returns the Volume."""
    from ctstudio.io import read_volume

    yield {"stage": "reading", "path": str(path)}
    volume = read_volume(path, series_uid=series_uid) if series_uid else read_volume(path)
    yield {"stage": "loaded", "path": str(path), "shape": volume.shape}
    return volume


def list_series_job(folder):
    """The DICOM series in ``folder`` (a list; empty when io cannot list series)."""
    yield {"stage": "scanning", "path": str(folder)}
    return list_series(folder)


def list_series(folder) -> list:
    """Series in a DICOM folder through ctstudio.io (whatever its listing function is called)."""
    import importlib

    for modname, fname in (("ctstudio.io", "list_series"), ("ctstudio.io.dicom", "list_series"),
                           ("ctstudio.io.dicom", "scan_series"), ("ctstudio.io.dicom", "find_series")):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        fn = getattr(mod, fname, None)
        if fn is not None:
            return list(fn(Path(folder)))
    return []


def save_volume_job(volume, path, **options):
    """Write with :func:`ctstudio.io.write_volume` (atomic); returns the path written."""
    from ctstudio.io import write_volume

    yield {"stage": "writing", "path": str(path)}
    out = write_volume(volume, path, **options)
    return out


def resample_job(moving, reference):
    """``moving`` resampled onto ``reference``'s grid (see display.resample_to); returns (volume, how)."""
    from ctstudio.imaging.display_geometry import resample_to

    yield {"stage": "resampling"}
    return resample_to(moving, reference)
