"""A reader's session as a state machine, with no Qt: the app's screens and the headless
``ctstudio study run`` drive the same object.

States: ``tutorial`` -> ``trial`` <-> ``paused`` -> ``finished``. :meth:`ReaderSession.answer`
commits the answer (durably) *before* it returns the next trial, so a crash or kill never loses
a committed answer and a reopened session continues at the first unanswered trial, in the same
seeded order. While a trial is shown the next trial's images are prepared in a background thread
(prefetch), so the next trial appears without waiting for disk or resampling.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ctstudio.errors import InputError
from ctstudio.studies.images import DisplayCase, load_case, prepare, window_of
from ctstudio.studies.schedule import make_schedule, reader_seed
from ctstudio.studies.spec import StudySpec, resolve_pools
from ctstudio.studies.store import Store

TUTORIAL, TRIAL, PAUSED, FINISHED = "tutorial", "trial", "paused", "finished"


def register_study(store: Store, spec: StudySpec) -> int:
    """Resolve the pools (checking every file exists) and register the study; returns its id."""
    existing = store.study_by_name(spec.name)
    if existing is not None and existing["spec_digest"] == spec.digest():
        return int(existing["id"])
    return store.ensure_study(spec, resolve_pools(spec))


class ReaderSession:
    """One reader working through one session of a study (see module doc)."""

    def __init__(self, store: Store, study_id: int, reader_id: int, session_id: int, spec: StudySpec,
                 resumed: bool, prefetch: bool = True, cache_size: int = 6):
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
        self._shown_at: float | None = None
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self.window = window_of(spec.display)
        if self.state == FINISHED:
            self._mark_finished()
        elif self._pool is not None:
            self.prefetch(self._pos)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, spec: StudySpec, reader_code: str, survey: dict[str, Any] | None = None,
             prefetch: bool = True) -> "ReaderSession":
        """Register (or find) the study and the reader; resume the reader's unfinished session or start one."""
        study_id = register_study(store, spec)
        reader_id = store.ensure_reader(study_id, reader_code, survey)
        seed = reader_seed(spec.seed, reader_code.strip())
        cases = store.cases(study_id)
        real = [c["token"] for c in cases if c["cls"] == "real"]
        synthetic = [c["token"] for c in cases if c["cls"] == "synthetic"]
        # A reader who finished a session and comes back gets a further session with a new order.
        n_done = sum(1 for s in store.sessions_of(reader_id) if s["state"] == "finished")
        trials = make_schedule(spec.kind, real, synthetic, spec.trials_per_reader, seed + n_done, spec.sampling)
        session_id, resumed = store.open_session(study_id, reader_id, trials, seed + n_done)
        return cls(store, study_id, reader_id, session_id, spec, resumed, prefetch=prefetch)

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
        """Call when the current trial is on screen: starts its response clock, prefetches the next two."""
        self._shown_at = time.monotonic()
        self._paused_total = 0.0
        self.prefetch(self._pos + 1)
        self.prefetch(self._pos + 2)  # a head start when a reader answers faster than one load
        return self.current

    def pause(self) -> None:
        if self.state != TRIAL:
            return
        self.state = PAUSED
        self._paused_at = time.monotonic()
        self.store.set_session_state(self.session_id, "paused", at_question=self.position)

    def resume(self) -> dict | None:
        if self.state != PAUSED:
            return self.current
        self.state = TRIAL
        if self._paused_at is not None:
            self._paused_total += time.monotonic() - self._paused_at
            self._paused_at = None
        self.store.set_session_state(self.session_id, "open", event="session_unpaused", at_question=self.position)
        return self.current

    def answer(self, choice: str | None = None, scores: dict[str, int] | None = None, comment: str = "",
               window: dict | None = None, zoom: dict | None = None) -> dict | None:
        """Commit the answer to the current trial, then advance; returns the next trial (None at the end).

        Pair: ``choice`` is ``"left"`` or ``"right"`` (the side the reader thinks is real).
        Continuity: ``scores`` maps every structure to 1..len(scale).
        """
        if self.state == PAUSED:
            raise InputError("the session is paused; resume before answering")
        if self.state == FINISHED or self.current is None:
            raise InputError("the session is finished; there is nothing left to answer")
        trial = self.current
        if self._shown_at is None:
            self.shown()
        rt_ms = (time.monotonic() - self._shown_at - self._paused_total) * 1000.0
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
                raise InputError(f"score every structure before going on; missing: {', '.join(missing)}")
            bad = {k: v for k, v in scores.items()
                   if k not in self.spec.structures or not (isinstance(v, int) and 1 <= v <= len(self.spec.scale))}
            if bad:
                raise InputError(f"scores must be integers 1..{len(self.spec.scale)} for the study's structures; "
                                 f"got {bad}")
            fields["scores"] = scores
        self.store.record_response(self.session_id, trial, **fields)  # committed before we move on
        self._pos += 1
        self._shown_at = None
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
