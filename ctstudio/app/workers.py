"""Long work off the UI thread: generator functions run in a worker, their events become signals.

A job is a plain generator function (it never touches widgets, see :mod:`ctstudio.jobs`): what it
``yield``s is progress (an event dict), what it ``return``s is the result, what it raises is the error.
It takes ``cancel=`` (a :class:`~ctstudio.jobs.CancelToken`) and checks it between its steps.

:func:`start_worker` creates that token, runs the job on Qt's thread pool in a :class:`JobWorker`
(superqt's generator worker) and connects ``on_progress`` / ``on_result`` / ``on_error`` /
``on_finished``, which run on the UI thread. ``worker.quit()`` sets the token, so a job blocked inside
a long core step (a sampler step, a DICOM read) stops at its next ``check_cancel``, not only at its
next ``yield``; a cancelled job ends quietly (``aborted``), never as an error.

``kind=`` names what a request is for (``"open"``, ``"compare"``...): a newer request of the same kind
cancels the older one and the older one's late result, error and progress are dropped, so the window
shows what the user asked for last. Tests wait until a worker has left the live set (a quick job may
finish before a test connects to its ``finished`` signal);
:func:`wait_for_workers` cancels and drains all of them (the main window calls it when it closes).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QThreadPool
from superqt.utils import GeneratorWorker

from ctstudio.errors import Cancelled
from ctstudio.jobs import CancelToken, Progress, check_cancel

#: every worker started and not finished yet
_LIVE: set[JobWorker] = set()
#: the latest worker of each kind (the one whose results are still wanted)
_CURRENT: dict[str, JobWorker] = {}


class JobWorker(GeneratorWorker):
    """A generator worker that owns the job's cancel token (``cancel_token``; ``quit()`` sets it).

    ``superseded`` is True once a newer request of the same ``kind`` replaced it: its results are no
    longer delivered. Unlike superqt's worker, the job's generator is always closed when the worker
    stops (its ``finally`` blocks run in the worker thread), and a job's own ``RuntimeError`` is an
    error like any other.
    """

    def __init__(self, job: Callable[..., Generator], *args, kind: str | None = None, **kwargs) -> None:
        self.cancel_token = CancelToken()
        self.kind = kind
        self.superseded = False
        super().__init__(job, *args, cancel=self.cancel_token, **kwargs)

    def quit(self) -> None:
        """Ask the job to stop: at its next cancel check or its next yield, whichever comes first."""
        self.cancel_token.cancel("stopped from the window")
        super().quit()

    def work(self) -> Any:
        try:
            while True:
                if self.abort_requested:
                    self.aborted.emit()
                    return None
                try:
                    event = self._gen.send(self._next_value())
                except StopIteration as stop:
                    return stop.value
                self.yielded.emit(event)
        except Cancelled:
            if not self.cancel_token.is_set():
                raise  # a job that cancelled itself for another reason: an error to report
            self._abort_requested = True  # no result is emitted for a cancelled job
            self.aborted.emit()
            return None
        finally:
            self._gen.close()


def start_worker(job: Callable[..., Generator], *args, kind: str | None = None,
                 on_result: Callable | None = None, on_error: Callable[[BaseException], Any] | None = None,
                 on_progress: Callable | None = None, on_finished: Callable | None = None, **kwargs) -> JobWorker:
    """Start ``job(*args, cancel=token, **kwargs)`` in a worker thread and return the worker.

    With ``kind``, an older worker of that kind still running is cancelled and its callbacks are
    dropped from now on (``on_finished`` included: the newer request's own ``on_finished`` runs).
    Without ``on_error``, a job's error is re-raised on the UI thread (a bug, not a user's mistake).
    """
    worker = JobWorker(job, *args, kind=kind, **kwargs)
    if kind is not None:
        older = _CURRENT.get(kind)
        if older is not None:
            older.superseded = True
            older.quit()
        _CURRENT[kind] = worker

    def wanted(callback: Callable) -> Callable:
        def deliver(*values) -> None:
            if not worker.superseded:
                callback(*values)
        return deliver

    if on_result is not None:
        worker.returned.connect(wanted(on_result))
    if on_progress is not None:
        worker.yielded.connect(wanted(on_progress))
    if on_error is not None:
        worker.errored.connect(wanted(on_error))
    else:
        def reraise(exc: BaseException) -> None:
            raise exc
        worker.errored.connect(wanted(reraise))
    _LIVE.add(worker)

    def done() -> None:
        _LIVE.discard(worker)
        if kind is not None and _CURRENT.get(kind) is worker:
            del _CURRENT[kind]
        if on_finished is not None and not worker.superseded:
            on_finished()

    worker.finished.connect(done)
    worker.start()
    return worker


def wait_for_workers(timeout_ms: int = 30000) -> bool:
    """Cancel every live worker and wait for the thread pool to drain; True when it did in time."""
    for w in list(_LIVE):
        w.quit()
    return QThreadPool.globalInstance().waitForDone(timeout_ms)


def relay_callback(fn: Callable, *args, cancel: CancelToken | None = None, **kwargs) -> Generator[dict, None, Any]:
    """Run ``fn(*args, callback=..., cancel=cancel, **kwargs)`` -- a core function that reports progress
    through a callback -- and yield each event it reports as it comes; return what ``fn`` returns.

    ``fn`` runs in a helper thread so that its events reach the worker's ``yielded`` signal while it
    works. If the generator is closed early (the worker stopped), the token is set and the helper
    thread is joined before the generator ends: no thread is left behind.
    """
    events: queue.Queue = queue.Queue()
    finished = object()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = fn(*args, callback=events.put, cancel=cancel, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (handed to the generator, re-raised there)
            outcome["error"] = exc
        finally:
            events.put(finished)

    helper = threading.Thread(target=target, name=f"ctstudio-{getattr(fn, '__name__', 'job')}", daemon=True)
    helper.start()
    try:
        while (event := events.get()) is not finished:
            yield event
    finally:
        if helper.is_alive():
            if cancel is not None:
                cancel.cancel("stopped from the window")
            helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# -- jobs (plain generators: no Qt) -----------------------------------------------------------------
def load_volume_job(path, series_uid: str | None = None, *, cancel: CancelToken | None = None,
                    tilt: str | None = None, spacing: str | None = None):
    """Read a volume with :func:`ctstudio.io.read_volume`; yields the reader's own progress, returns the Volume.
    ``tilt`` / ``spacing``: the reading policy for a DICOM series with gantry tilt or uneven spacing (default:
    refuse, so the window can ask the user)."""
    from ctstudio.io import read_volume

    options = {"series_uid": series_uid} if series_uid else {}
    options.update({k: v for k, v in (("tilt", tilt), ("spacing", spacing)) if v is not None})
    volume = yield from relay_callback(read_volume, path, cancel=cancel, **options)
    return volume


def list_series_job(folder, *, cancel: CancelToken | None = None):
    """The DICOM series in ``folder`` (:func:`ctstudio.io.list_series`: a list of dicts)."""
    from ctstudio.io import list_series

    progress = Progress("scan", unit="folder")
    yield progress.event("start", path=str(folder))
    series = list_series(folder)
    check_cancel(cancel, f"scanned {folder}")
    return series


def save_volume_job(volume, path, *, cancel: CancelToken | None = None, **options):
    """Write with :func:`ctstudio.io.write_volume` (atomic); returns the path written."""
    from ctstudio.io import write_volume

    yield Progress("save", total=1, unit="file").event("start", path=str(path))
    check_cancel(cancel, f"nothing written to {path}")
    return write_volume(volume, path, **options)


def resample_job(moving, reference, *, cancel: CancelToken | None = None):
    """``moving`` resampled onto ``reference``'s grid (see display_geometry.resample_to); returns (volume, how)."""
    from ctstudio.imaging.display_geometry import resample_to

    yield Progress("resample", total=1, unit="volume").event("start")
    check_cancel(cancel, "nothing resampled")
    return resample_to(moving, reference)
