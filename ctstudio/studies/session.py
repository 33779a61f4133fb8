"""A reader's session as a state machine, with no Qt: the app's screens and the headless
``ctstudio study run`` drive the same object.

States: ``tutorial`` -> ``trial`` <-> ``paused`` -> ``finished``. :meth:`ReaderSession.answer`
commits the answer (durably) *before* it returns the next trial, so a crash or kill never loses
a committed answer and a reopened session continues at the first unanswered trial, in the same
seeded order.

Deliberate answers: an answer is accepted only after the trial has been *read* for the spec's
``min_view_ms`` (:class:`TooEarly` otherwise; the answer is not recorded). Reading time counts only
while the trial is shown, not paused, and the window has the focus (:meth:`ReaderSession.focus_lost`
/ :meth:`ReaderSession.focus_gained`, logged as events); it is the ``response_ms`` stored.

A reader code that finished the study is refused (:class:`AlreadyFinished`) unless the spec allows
repeats. While a trial is shown the next trial's images are prepared in a background thread
(prefetch), so the next trial appears without waiting for disk or resampling.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ctstudio.errors import InputError
from ctstudio.studies.images import DisplayCase, load_case, prepare, window_of
from ctstudio.studies.schedule import make_schedule, reader_seed
from ctstudio.studies.spec import StudySpec, resolve_pools
from ctstudio.studies.store import Store, normalise_reader_code

TUTORIAL, TRIAL, PAUSED, FINISHED = "tutorial", "trial", "paused", "finished"


class TooEarly(InputError):
    """An answer before the trial was read for the minimum viewing time: not recorded."""


class AlreadyFinished(InputError):
    """The reader code has finished this study and the spec does not allow repeats."""


def register_study(store: Store, spec: StudySpec) -> int:
    """Resolve the pools (checking every file exists) and register the study; returns its id."""
    existing = store.study_by_name(spec.name)
    if existing is not None and store._study_matches(existing, spec):
        sid = int(existing["id"])
        if not all(Path(c["path"]).exists() for c in store.cases(sid)):
            store.relocate_cases(sid, resolve_pools(spec))  # a moved study folder: cases found by content
        return sid
    return store.ensure_study(spec, resolve_pools(spec))


class ReaderSession:
    """One reader working through one session of a study (see module doc)."""

    def __init__(self, store: Store, study_id: int, reader_id: int, session_id: int, spec: StudySpec,
                 resumed: bool, prefetch: bool = True, cache_size: int = 6, enforce_min_view: bool = True):
        self.store = store
        self.study_id = study_id
        self.reader_id = reader_id
        self.session_id = session_id
        self.spec = spec
        self.resumed = resumed
        self.trials = store.trials(session_id)
        answered = store.answered_indices(session_id)
        self._pos = next((i for i, t in enumerate(self.trials) if t["question_index"] not in answered),
                         len(self.trials))
        self.state = FINISHED if self._pos >= len(self.trials) else TUTORIAL
        self._cache: OrderedDict[str, DisplayCase] = OrderedDict()
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._cache_size = cache_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-prefetch") if prefetch else None
        self.min_view_ms = float(spec.min_view_ms) if enforce_min_view else 0.0
        self._shown = False
        self._read_s = 0.0  # reading time of the current trial before _active_since
        self._active_since: float | None = None  # the clock runs: shown, not paused, window focused
        self._focused = True
        self.window = window_of(spec.display)
        if self.state == FINISHED:
            self._mark_finished()
        elif self._pool is not None:
            self.prefetch(self._pos)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, spec: StudySpec, reader_code: str, survey: dict[str, Any] | None = None,
             prefetch: bool = True, update_profile: bool = False,
             enforce_min_view: bool = True) -> "ReaderSession":
        """Register (or find) the study and the reader; resume the reader's unfinished session or start one.

        A reader who finished is refused with :class:`AlreadyFinished` unless ``spec.allow_repeats``
        (then a further session with a new order starts). ``enforce_min_view=False`` is for scripted
        readers only (``ctstudio study run --no-min-view``); it is logged with the session."""
        code = normalise_reader_code(reader_code)
        study_id = register_study(store, spec)
        existing = store.reader_by_code(study_id, code)
        if existing is not None and not spec.allow_repeats:
            sessions = store.sessions_of(existing["id"])
            if sessions and all(s["state"] == "finished" for s in sessions):
                raise AlreadyFinished(f"reader {code} has already finished this study ({spec.name!r}); there is "
                                      "nothing left to answer", path=store.path,
                                      hint="check the reader code; the study owner can allow repeats in the spec "
                                           "(study.allow_repeats = true)")
        reader_id = store.ensure_reader(study_id, code, survey, update_profile=update_profile)
        seed = reader_seed(spec.seed, code)
        cases = store.cases(study_id)
        real = [c["token"] for c in cases if c["cls"] == "real"]
        synthetic = [c["token"] for c in cases if c["cls"] == "synthetic"]
        # A reader who finished a session and comes back (allow_repeats) gets a further session, new order.
        n_done = sum(1 for s in store.sessions_of(reader_id) if s["state"] == "finished")
        trials = make_schedule(spec.kind, real, synthetic, spec.trials_per_reader, seed + n_done, spec.sampling)
        session_id, resumed = store.open_session(study_id, reader_id, trials, seed + n_done)
        if not enforce_min_view:
            store.log_event("min_view_not_enforced", session_id, note="scripted reader")
        return cls(store, study_id, reader_id, session_id, spec, resumed, prefetch=prefetch,
                   enforce_min_view=enforce_min_view)

    # -- images -------------------------------------------------------------------------------
    def _prepare_guarded(self, token: str) -> DisplayCase:
        # Runs in the prefetch thread: paths come from a map read on the UI thread, never the db.
        return prepare(load_case(self._paths[token]), self.spec.display)

    @property
    def _paths(self) -> dict[str, str]:
        if not hasattr(self, "_path_map"):
            self._path_map = {c["token"]: c["path"] for c in self.store.cases(self.study_id)}
        return self._path_map

    def prefetch(self, pos: int) -> None:
        """Start preparing the images of trial ``pos`` (0-based) in the background."""
        if self._pool is None or not 0 <= pos < len(self.trials):
            return
        _ = self._paths
        for tok in self._tokens(self.trials[pos]):
            with self._lock:
                if tok in self._cache or tok in self._futures:
                    continue
                self._futures[tok] = self._pool.submit(self._prepare_guarded, tok)

    @staticmethod
    def _tokens(trial: dict) -> tuple[str, ...]:
        return (trial["left_token"], trial["right_token"]) if trial["kind"] == "pair" else (trial["case_token"],)

    def case_image(self, token: str) -> DisplayCase:
        with self._lock:
            if token in self._cache:
                self._cache.move_to_end(token)
                return self._cache[token]
            fut = self._futures.pop(token, None)
        img = fut.result() if fut is not None else self._prepare_guarded(token)
        with self._lock:
            self._cache[token] = img
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return img

    def images(self, trial: dict | None = None) -> tuple[DisplayCase, ...]:
        """The prepared images of a trial (the current one by default): (left, right) or (case,)."""
        trial = trial or self.current
        if trial is None:
            return ()
        return tuple(self.case_image(t) for t in self._tokens(trial))

    # -- state --------------------------------------------------------------------------------
    @property
    def current(self) -> dict | None:
        return self.trials[self._pos] if self._pos < len(self.trials) else None

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def position(self) -> int:
        """1-based question index of the current trial (n + 1 when finished)."""
        return self._pos + 1

    @property
    def n_answered(self) -> int:
        return self._pos

    def progress_text(self) -> str:
        noun = "pair" if self.spec.kind == "pair" else "case"
        if self.state == FINISHED:
            return f"all {self.n_trials} {noun}s done"
        return f"{noun} {self.position} of {self.n_trials}"

    def begin(self) -> dict | None:
        """Leave the tutorial (or a resume screen) and show the current trial."""
        if self.state == FINISHED:
            return None
        self.state = TRIAL
        self.store.log_event("trials_begin", self.session_id, at_question=self.position, resumed=self.resumed)
        return self.shown()

    def shown(self) -> dict | None:
        """Call when the current trial is on screen: starts its reading clock, prefetches the next two."""
        self._shown = True
        self._read_s = 0.0
        self._active_since = time.monotonic() if self._focused and self.state != PAUSED else None
        self.prefetch(self._pos + 1)
        self.prefetch(self._pos + 2)  # a head start when a reader answers faster than one load
        return self.current

    def _stop_clock(self) -> None:
        if self._active_since is not None:
            self._read_s += time.monotonic() - self._active_since
            self._active_since = None

    def _start_clock(self) -> None:
        if self._shown and self._active_since is None and self._focused and self.state == TRIAL:
            self._active_since = time.monotonic()

    def reading_ms(self) -> float:
        """How long the current trial has been read: shown, not paused, window focused (ms)."""
        extra = time.monotonic() - self._active_since if self._active_since is not None else 0.0
        return (self._read_s + extra) * 1000.0

    def ms_until_answer(self) -> float:
        """Milliseconds of reading left before an answer is accepted (0 when it is)."""
        return max(0.0, self.min_view_ms - self.reading_ms()) if self._shown else self.min_view_ms

    def can_answer(self) -> bool:
        return self.state == TRIAL and self._shown and self.ms_until_answer() <= 0.0

    def focus_lost(self) -> None:
        """The window lost the focus (another program, a dialog): reading time stops; logged."""
        if not self._focused:
            return
        self._focused = False
        self._stop_clock()
        if self.state in (TRIAL, PAUSED):
            self.store.log_event("focus_out", self.session_id, at_question=self.position)

    def focus_gained(self) -> None:
        if self._focused:
            return
        self._focused = True
        self._start_clock()
        if self.state in (TRIAL, PAUSED):
            self.store.log_event("focus_in", self.session_id, at_question=self.position)

    def pause(self) -> None:
        if self.state != TRIAL:
            return
        self._stop_clock()
        self.state = PAUSED
        self.store.set_session_state(self.session_id, "paused", at_question=self.position)

    def resume(self) -> dict | None:
        """Back from a pause: the trial's reading clock goes on from where it stopped."""
        if self.state != PAUSED:
            return self.current
        self.state = TRIAL
        self._start_clock()
        self.store.set_session_state(self.session_id, "open", event="session_unpaused", at_question=self.position)
        return self.current

    def answer(self, choice: str | None = None, scores: dict[str, int] | None = None, comment: str = "",
               window: dict | None = None, zoom: dict | None = None) -> dict | None:
        """Commit the answer to the current trial, then advance; returns the next trial (None at the end).

        Pair: ``choice`` is ``"left"`` or ``"right"`` (the side the reader thinks is real).
        Continuity: ``scores`` maps every structure to 1..len(scale), or to None: "not visible / not
        applicable" in this case (stored as null, left out of that structure's statistics).
        """
        if self.state == PAUSED:
            raise InputError("the session is paused; resume before answering")
        if self.state == FINISHED or self.current is None:
            raise InputError("the session is finished; there is nothing left to answer")
        trial = self.current
        if not self._shown:
            self.shown()
        if self.ms_until_answer() > 0.0:
            raise TooEarly(f"an answer is accepted after {self.min_view_ms:.0f} ms of viewing; this one came after "
                           f"{self.reading_ms():.0f} ms and was not recorded")
        rt_ms = self.reading_ms()
        fields: dict[str, Any] = {"response_ms": round(rt_ms, 1), "comment": comment or None}
        fields["window"] = window or {"lower": self.window.lower, "upper": self.window.upper, "name": self.window.name}
        fields["zoom"] = zoom or {}
        if trial["kind"] == "pair":
            if choice not in ("left", "right"):
                raise InputError(f"a pair answer is 'left' or 'right', got {choice!r}")
            fields["choice"] = choice
            fields["correct"] = int(choice == trial["real_side"])
        else:
            scores = dict(scores or {})
            missing = [s for s in self.spec.structures if s not in scores]
            if missing:
                raise InputError(f"score every structure (or mark it not visible) before going on; missing: "
                                 f"{', '.join(missing)}")
            bad = {k: v for k, v in scores.items()
                   if k not in self.spec.structures
                   or not (v is None or (isinstance(v, int) and not isinstance(v, bool)
                                         and 1 <= v <= len(self.spec.scale)))}
            if bad:
                raise InputError(f"scores must be integers 1..{len(self.spec.scale)} (or None: not visible) for the "
                                 "study's structures; "
                                 f"got {bad}")
            fields["scores"] = scores
        self.store.record_response(self.session_id, trial, **fields)  # committed before we move on
        self._pos += 1
        self._shown = False
        self._read_s, self._active_since = 0.0, None
        if self._pos >= len(self.trials):
            self._mark_finished()
            return None
        return self.current

    def _mark_finished(self) -> None:
        self.state = FINISHED
        row = self.store.db["sessions"].get(self.session_id)
        if row["state"] != "finished":
            self.store.set_session_state(self.session_id, "finished")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
