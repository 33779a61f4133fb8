"""Workers: one cancel token per job, quit() reaches a job blocked between yields, a newer request of
the same kind wins (the open-file race), wait_for_workers drains, the reader's progress is relayed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QThreadPool

from ctstudio.app import workers
from ctstudio.app.workers import relay_callback, start_worker, wait_for_workers
from ctstudio.jobs import CancelToken, Progress, check_cancel, validate_event

CHEST = "chest-ct-philips-bigbore/chest_ct_slices038-101.nii.gz"


def stepping_job(n_steps: int, step_s: float, done: list, *, cancel=None):
    """Yields once, then works ``n_steps`` steps WITHOUT yielding (a sampler inside one slice, a DICOM
    read): only the cancel token can stop it early."""
    yield Progress("test", total=n_steps, unit="step").event("start")
    for i in range(n_steps):
        check_cancel(cancel, f"{i} of {n_steps} steps")
        time.sleep(step_s)
        done.append(i)
    return len(done)


def value_job(value, delay_s: float = 0.0, finished: threading.Event | None = None, *, cancel=None):
    """Returns ``value`` after ``delay_s`` and ignores the token (a reader with no cancel checks)."""
    yield Progress("test", total=1, unit="value").event("start")
    time.sleep(delay_s)
    if finished is not None:
        finished.set()
    return value


def _wait_finished(qtbot, *ws, timeout: int = 10000) -> None:
    """Wait until the workers' ``finished`` reached the UI thread (a worker may finish before a test could
    connect to its signal, so this watches the registry that start_worker's own handler updates)."""
    qtbot.waitUntil(lambda: not any(w in workers._LIVE for w in ws), timeout=timeout)


def _no_thread_left(qtbot) -> None:
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10000)
    assert not workers._LIVE
    assert not workers._CURRENT
    assert not [t for t in threading.enumerate() if t.name.startswith("ctstudio-")]


def test_quit_stops_a_job_within_one_step(qtbot):
    step_s = 0.05
    done: list[int] = []
    results, errors, aborted = [], [], []
    worker = start_worker(stepping_job, 200, step_s, done, on_result=results.append, on_error=errors.append)
    worker.aborted.connect(lambda: aborted.append(True))
    assert isinstance(worker.cancel_token, CancelToken) and not worker.cancel_token.is_set()
    qtbot.waitUntil(lambda: len(done) >= 3, timeout=10000)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        t0 = time.perf_counter()
        at_quit = len(done)
        worker.quit()
    latency = time.perf_counter() - t0
    assert worker.cancel_token.is_set()
    assert len(done) - at_quit <= 1, f"{len(done) - at_quit} steps ran after quit()"
    assert latency < 4 * step_s + 0.5, f"stopped {latency:.2f} s after quit()"
    qtbot.waitUntil(lambda: bool(aborted), timeout=5000)
    assert results == [] and errors == [], "a cancelled job is neither a result nor an error"
    _no_thread_left(qtbot)


def test_a_job_error_reaches_on_error(qtbot):
    def failing(*, cancel=None):
        yield Progress("test").event("start")
        raise RuntimeError("broken on purpose")

    errors = []
    worker = start_worker(failing, on_error=errors.append)
    _wait_finished(qtbot, worker, timeout=10000)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], RuntimeError) and "broken on purpose" in str(errors[0])
    _no_thread_left(qtbot)


def test_newer_request_of_the_same_kind_cancels_the_older_one(qtbot):
    done: list[int] = []
    results, finished = [], []
    slow = start_worker(stepping_job, 200, 0.05, done, kind="open", on_result=lambda r: results.append("slow"),
                        on_finished=lambda: finished.append("slow"))
    qtbot.waitUntil(lambda: len(done) >= 1, timeout=10000)
    fast = start_worker(value_job, "fast", kind="open", on_result=results.append,
                        on_finished=lambda: finished.append("fast"))
    assert slow.superseded and slow.cancel_token.is_set() and not fast.superseded
    _wait_finished(qtbot, slow, fast, timeout=10000)
    qtbot.wait(50)
    assert results == ["fast"]
    assert finished == ["fast"], "the superseded request's callbacks are dropped"
    assert len(done) < 20, "the older job kept running"
    _no_thread_left(qtbot)


def test_late_result_of_an_older_request_is_dropped(qtbot):
    """The older job returned in its thread, but its result is still queued for the UI thread when the
    newer request starts: that late result must not be delivered."""
    results = []
    returned_in_thread = threading.Event()
    start_worker(value_job, "old", 0.0, returned_in_thread, kind="open", on_result=results.append)
    assert returned_in_thread.wait(10)
    time.sleep(0.1)  # the returned signal is emitted and queued; no event processed yet
    new = start_worker(value_job, "new", 0.2, kind="open", on_result=results.append)
    _wait_finished(qtbot, new, timeout=10000)
    qtbot.wait(50)
    assert results == ["new"]
    _no_thread_left(qtbot)


def test_other_kinds_and_kindless_workers_run_side_by_side(qtbot):
    results = []
    a = start_worker(value_job, "open", 0.1, kind="open", on_result=results.append)
    b = start_worker(value_job, "compare", 0.1, kind="compare", on_result=results.append)
    c = start_worker(value_job, "save", 0.1, on_result=results.append)
    _wait_finished(qtbot, a, b, c, timeout=10000)
    qtbot.wait(50)
    assert sorted(results) == ["compare", "open", "save"]
    _no_thread_left(qtbot)


def test_wait_for_workers_cancels_and_drains(qtbot):
    done = [[], [], []]  # one more job than a 2-core machine's thread pool runs at once
    ws = [start_worker(stepping_job, 400, 0.05, d) for d in done]
    running = min(len(ws), QThreadPool.globalInstance().maxThreadCount())
    qtbot.waitUntil(lambda: sum(len(d) >= 1 for d in done) >= running, timeout=10000)
    assert wait_for_workers(10000)
    assert all(w.cancel_token.is_set() for w in ws)
    assert all(len(d) < 40 for d in done), "wait_for_workers waited for the jobs to run to their end (400 steps)"
    qtbot.wait(50)  # finished signals delivered
    _no_thread_left(qtbot)


def test_relay_callback_yields_events_as_they_come_and_joins_when_closed():
    def core(n, *, callback=None, cancel=None):
        progress = Progress("core", total=n, unit="step", callback=callback)
        for i in range(n):
            check_cancel(cancel, f"{i} steps")
            time.sleep(0.02)
            progress.event("step", i + 1)
        return "result"

    gen = relay_callback(core, 5, cancel=CancelToken())
    seen = []
    while True:
        try:
            seen.append(validate_event(next(gen)))
        except StopIteration as stop:
            assert stop.value == "result"
            break
    assert [e["done"] for e in seen] == [1, 2, 3, 4, 5]

    token = CancelToken()
    gen = relay_callback(core, 10000, cancel=token)
    next(gen)
    gen.close()  # the worker stopped: the token is set and the helper thread has ended
    assert token.is_set()
    assert not [t for t in threading.enumerate() if t.name == "ctstudio-core"]


# -- the open-file race in the window ------------------------------------------------------------------
def test_open_race_last_file_opened_wins(qtbot, main_window, shared_data, sample_path):
    """Open the 64x512x512 chest CT, then the small sample 50 ms later: the window ends on the sample,
    the chest's load is cancelled or its late result dropped, no error shown, no thread left."""
    from ctstudio.io import read_volume

    shown = []
    main_window.volume_changed.connect(shown.append)
    main_window.open_path(shared_data / CHEST)
    qtbot.wait(50)
    main_window.open_path(sample_path)
    qtbot.waitUntil(lambda: bool(shown), timeout=60000)
    assert wait_for_workers(60000)
    qtbot.wait(200)  # anything queued by the chest's worker is delivered (and must be dropped)
    sample = read_volume(sample_path)
    assert len(shown) == 1, [v.shape for v in shown]
    assert main_window.volume.shape == sample.shape
    assert np.array_equal(main_window.volume.array, sample.array)
    assert main_window.volume_path == str(sample_path)
    assert main_window.error_box is None
    _no_thread_left(qtbot)


def test_open_race_with_a_reader_that_ignores_cancel(qtbot, main_window, monkeypatch, sample_path, phantom):
    """Even when the older read cannot be interrupted (it returns its volume late), its result is dropped."""
    from ctstudio.io import read_volume as real_read

    def read_volume(path, *, callback=None, cancel=None, **options):
        if "slow" in str(path):
            time.sleep(0.5)
            return phantom
        return real_read(path, callback=callback, cancel=cancel, **options)

    monkeypatch.setattr("ctstudio.io.read_volume", read_volume)
    shown = []
    main_window.volume_changed.connect(shown.append)
    main_window.open_path("/nonexistent/slow.nii.gz")
    qtbot.wait(50)
    main_window.open_path(sample_path)
    qtbot.waitUntil(lambda: bool(shown), timeout=30000)
    qtbot.wait(700)  # the slow read has returned its volume by now
    assert wait_for_workers(30000)
    qtbot.wait(200)
    assert [v.shape for v in shown] == [real_read(sample_path).shape]
    assert main_window.error_box is None
    _no_thread_left(qtbot)


@pytest.mark.parametrize("source", ["nifti", "dicom folder", "dicom series uid"])
def test_load_volume_job_relays_the_readers_progress(qtbot, tmp_path, phantom, sample_path, source):
    from ctstudio.io import list_series, read_volume, write_volume

    uid = None
    if source == "nifti":
        path = sample_path
    else:
        path = tmp_path / "series"
        write_volume(phantom.with_array(phantom.array[:12].copy()), path, format="dicom")
        if source == "dicom series uid":
            uid = list_series(path)[0]["series_instance_uid"]
    events, results = [], []
    worker = start_worker(workers.load_volume_job, str(path), uid, on_progress=events.append,
                          on_result=results.append)
    _wait_finished(qtbot, worker, timeout=60000)
    qtbot.waitUntil(lambda: bool(results), timeout=5000)
    assert np.array_equal(results[0].array, read_volume(path).array)
    assert events, "the reader's progress did not reach the window"
    for ev in events:
        validate_event(ev)
    assert {ev["job"] for ev in events} == {"load"}
    _no_thread_left(qtbot)
