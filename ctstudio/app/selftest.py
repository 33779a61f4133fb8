"""Self-tests that run inside the real window: the hook behind ``CTSTUDIO_SELFTEST`` (not for users).

``packaging/smoke.sh`` uses them to check a standalone bundle as a user would run it, through the
ordinary ``ctstudio [PATH]`` start-up (``ctstudio.app.main.run_app`` is not changed for them):

``CTSTUDIO_SELFTEST=shown``
    Exit with status 0 as soon as the main window has been shown and painted for the first time
    (``os._exit``: no clean-up, so an outside timer such as hyperfine measures the start-up time to a
    shown window), printing that time as seen from inside the process.
``CTSTUDIO_SELFTEST=study``
    A scripted reader session through the Study tab's own screens: wait for the volume given on the
    command line to load, fill the registration form with ``CTSTUDIO_SELFTEST_SPEC`` (a study spec)
    and ``CTSTUDIO_SELFTEST_DB`` (the database, created when missing), press Start and Begin, answer
    every trial with the screen's buttons (the left image on pair screens; the middle of the scale on
    continuity screens; the first answer of every survey question), then check that the database holds one answer per trial, close the window
    and exit 0. Any failure prints ``selftest: FAILED ...`` and exits 1; a session that has not
    finished within ``CTSTUDIO_SELFTEST_TIMEOUT`` seconds (default 300) exits 3.

Either way ``CTSTUDIO_SELFTEST_SCREENSHOT=FILE.png`` saves a grab of the window (the viewer, or the
Study tab's end screen) just before quitting.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

MODES = ("shown", "study")
POLL_MS = 20  # how often the scripted reader looks at the screen
READER_CODE = "SM01"  # the house rule: 1-4 letters then 1-4 digits


def _say(text: str) -> None:
    print(f"selftest: {text}", file=sys.stderr, flush=True)


def _seconds_since_process_start() -> float | None:
    """Wall time since this process was started (Linux /proc), else None."""
    try:
        start_ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _SelfTest(QObject):
    """Waits for the first painted main window, then runs the chosen mode on it."""

    def __init__(self, mode: str, app: QApplication) -> None:
        super().__init__(app)
        self.mode = mode
        self.app = app
        self.window: QMainWindow | None = None
        self.started = False
        self.t0 = time.perf_counter()
        self.n_answers = 0

    # -- waiting for the window ---------------------------------------------------------------------------
    def eventFilter(self, obj, ev) -> bool:  # noqa: N802
        if self.window is None and ev.type() == QEvent.Type.Show and isinstance(obj, QMainWindow):
            self.window = obj
        elif (self.window is not None and not self.started and ev.type() == QEvent.Type.Paint
              and hasattr(obj, "window") and obj.window() is self.window):
            self.started = True
            self.app.removeEventFilter(self)
            QTimer.singleShot(0, self._guarded(self._first_paint))
        return False

    def _guarded(self, fn):
        def run(*args):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 -- a self-test reports every failure and exits non-zero
                traceback.print_exc()
                self.finish(1, "FAILED with the exception above")
        return run

    def finish(self, code: int, message: str) -> None:
        _say(message)
        shot = os.environ.get("CTSTUDIO_SELFTEST_SCREENSHOT")
        if shot and self.window is not None:
            self.window.grab().save(shot)
            _say(f"screenshot {shot}")
        if self.window is not None:
            self.window.close()
        self.app.exit(code)

    def _first_paint(self) -> None:
        since = _seconds_since_process_start()
        _say(f"window shown {time.perf_counter() - self.t0:.2f} s after the app started"
             + (f", {since:.2f} s after the process started" if since is not None else ""))
        if self.mode == "shown":
            # Leave at once: closing the window would wait for the tabs' background workers (e.g. a
            # model tab importing torch), which is not start-up time.
            _say("OK (quit when shown)")
            sys.stderr.flush()
            os._exit(0)
        timeout_s = float(os.environ.get("CTSTUDIO_SELFTEST_TIMEOUT", "300"))
        QTimer.singleShot(int(timeout_s * 1000), lambda: self.finish(3, f"FAILED: not done after {timeout_s:g} s"))
        w = self.window
        w.load_failed.connect(lambda message: self.finish(1, f"FAILED: the volume did not load: {message}"))
        if w.volume is not None:
            self._volume_ready(w.volume)
        else:
            w.volume_changed.connect(self._guarded(self._volume_ready))

    # -- the scripted study ------------------------------------------------------------------------------
    def _volume_ready(self, volume) -> None:
        if volume is None:
            raise AssertionError("no volume: give the sample volume on the command line")
        _say(f"volume shown: {volume.array.shape[0]} x {volume.array.shape[1]} x {volume.array.shape[2]} "
             f"voxels, {time.perf_counter() - self.t0:.2f} s")
        spec = os.environ.get("CTSTUDIO_SELFTEST_SPEC")
        db = os.environ.get("CTSTUDIO_SELFTEST_DB")
        if not spec or not db:
            raise AssertionError("CTSTUDIO_SELFTEST=study needs CTSTUDIO_SELFTEST_SPEC and CTSTUDIO_SELFTEST_DB")
        tab = self.window.tab("Study")
        if tab is None:
            raise AssertionError("the window has no Study tab")
        self.tab = tab
        self.window.tabs.setCurrentWidget(tab)
        reg = tab.registration
        reg.spec_edit.setText(spec)
        reg.db_edit.setText(db)
        reg.reader_edit.setText(READER_CODE)
        from PySide6.QtWidgets import QComboBox

        for box in reg.findChildren(QComboBox):  # the survey: the first answer of every unanswered question
            if box.currentIndex() < 0 and box.count():
                box.setCurrentIndex(0)
        self.starts = 0
        self._step()

    def _step(self) -> None:
        """Act on the screen the Study tab shows, as a reader would, until the end screen."""
        tab = self.tab
        screen = tab.screen
        if screen is tab.registration:
            # Start (a second press confirms a stored profile when the form asks for it)
            if self.starts >= 2:
                raise AssertionError(f"Start did not begin the session: {tab.registration.message.text()!r}")
            self.starts += 1
            tab.registration.start_button.click()
        elif screen is tab.pair:
            # the answer buttons are enabled once the spec's minimum viewing time has passed
            if tab.pair.left_button.isEnabled():
                self._count(tab.pair.left_button.click)
        elif screen is tab.continuity:
            c = tab.continuity
            middle = (len(tab.spec.scale) + 1) // 2
            if all(g.button(middle).isEnabled() for g in c.groups.values()):
                for structure, group in c.groups.items():
                    if group.checkedId() != middle:
                        c.set_score(structure, middle)
            if c.next_button.isEnabled():
                self._count(c.next_button.click)
        elif screen is tab.end:
            self._check_database()
            return
        elif hasattr(screen, "button"):  # tutorial, welcome back, paused: their one button goes on
            _say(f"{screen.title.text()}: {screen.button.text()}")
            screen.button.click()
        else:
            raise AssertionError(f"unexpected screen {type(screen).__name__}")
        QTimer.singleShot(POLL_MS, self._guarded(self._step))

    def _count(self, answer) -> None:
        """Give one answer; count it when the session recorded it."""
        before = self.tab.session.n_answered
        answer()
        if self.tab.session is None or self.tab.session.n_answered > before or self.tab.screen is self.tab.end:
            self.n_answers += 1

    def _check_database(self) -> None:
        from ctstudio.studies.store import Store

        n_trials = self.tab.session.n_trials if self.tab.session is not None else None
        with Store(os.environ["CTSTUDIO_SELFTEST_DB"]) as store:
            rows = [r for r in store.responses_table() if r["reader"] == READER_CODE and r["study"] == self.tab.spec.name]
        if n_trials is None or len(rows) != n_trials or self.n_answers != n_trials:
            raise AssertionError(f"{len(rows)} answers in the database, {self.n_answers} given, {n_trials} trials")
        self.finish(0, f"OK: study session finished, {len(rows)} answers saved by the Study tab "
                       f"({time.perf_counter() - self.t0:.2f} s)")


def install(mode: str) -> None:
    """Create the QApplication and watch for the main window; ``run_app`` then reuses the application."""
    if mode not in MODES:
        raise SystemExit(f"CTSTUDIO_SELFTEST must be one of {', '.join(MODES)}, not {mode!r}")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.installEventFilter(_SelfTest(mode, app))
