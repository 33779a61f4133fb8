"""The one study store: SQLite through sqlite-utils.

* WAL journal, a busy timeout, so two app instances (or an app and a script) on one file both
  work; every write is one short ``BEGIN IMMEDIATE`` transaction.
* Plain-function migrations (as in simonw/llm ``migrations.py``): each function in
  :data:`MIGRATIONS` runs once, in order, and its name is recorded in ``_ctstudio_migrations``.
  Never edit a migration that shipped; add a new one.
* Each answer (response row + event) is committed before the caller shows the next trial.
* ``events`` is an append-only audit trail (triggers refuse UPDATE and DELETE).

Tables: studies, cases, readers (with the survey), sessions, trials, responses, events.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

from ctstudio.errors import ConfigError, InputError

MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db["studies"].create({"id": int, "name": str, "kind": str, "seed": int, "spec_json": str,
                          "spec_digest": str, "created_at": str}, pk="id")
    db["studies"].create_index(["name"], unique=True)
    db["cases"].create({"token": str, "study_id": int, "cls": str, "path": str}, pk="token",
                       foreign_keys=[("study_id", "studies", "id")])
    db["readers"].create({"id": int, "study_id": int, "code": str, "radiologist": int,
                          "board_certified": int, "trainee": int, "specialty": str, "screening": int,
                          "years_experience": float, "created_at": str}, pk="id",
                         foreign_keys=[("study_id", "studies", "id")])
    db["readers"].create_index(["study_id", "code"], unique=True)
    db["sessions"].create({"id": int, "study_id": int, "reader_id": int, "seed": int, "state": str,
                           "created_at": str, "finished_at": str}, pk="id",
                          foreign_keys=[("study_id", "studies", "id"), ("reader_id", "readers", "id")])
    db["trials"].create({"id": int, "session_id": int, "question_index": int, "kind": str, "left_token": str,
                         "right_token": str, "real_side": str, "case_token": str, "cls": str}, pk="id",
                        foreign_keys=[("session_id", "sessions", "id")])
    db["trials"].create_index(["session_id", "question_index"], unique=True)
    db["responses"].create({"id": int, "trial_id": int, "session_id": int, "question_index": int,
                            "choice": str, "correct": int, "real_side": str, "response_ms": float,
                            "scores_json": str, "comment": str, "window_json": str, "zoom_json": str,
                            "answered_at": str}, pk="id",
                           foreign_keys=[("trial_id", "trials", "id"), ("session_id", "sessions", "id")])
    db["responses"].create_index(["trial_id"], unique=True)
    db["events"].create({"id": int, "ts": str, "session_id": int, "kind": str, "payload": str}, pk="id")


@migration
def m002_events_append_only(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
               "BEGIN SELECT RAISE(ABORT, 'events is append-only'); END")
    db.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
               "BEGIN SELECT RAISE(ABORT, 'events is append-only'); END")


@migration
def m003_reader_pseudonym_note(db: sqlite_utils.Database) -> None:
    # Readers are identified by a pseudonymous code; an optional free-text note about the survey.
    db["readers"].add_column("survey_note", str)


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations not yet applied; returns their names."""
    if "_ctstudio_migrations" not in db.table_names():
        db["_ctstudio_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = {r["name"] for r in db["_ctstudio_migrations"].rows}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with db.atomic():  # a transaction, or a savepoint inside the caller's
            fn(db)
            db["_ctstudio_migrations"].insert({"name": fn.__name__, "applied_at": now()})
        applied.append(fn.__name__)
    return applied


#: the tables every study database has (m001); a database without one of them is damaged
CORE_TABLES = frozenset({"studies", "cases", "readers", "sessions", "trials", "responses", "events"})


class Store:
    """A study database file (``":memory:"`` for tests)."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.exists() and p.is_dir():
                raise InputError("expected a study database file but found a folder", path=p)
            if not p.parent.exists():
                raise InputError("the folder for the study database does not exist", path=p,
                                 hint="create the folder first or choose another --db path")
            if p.exists() and p.stat().st_size > 0:
                with open(p, "rb") as fh:
                    if fh.read(16) != b"SQLite format 3\x00":
                        raise InputError("not a SQLite study database", path=p,
                                         hint="give a .db file created by ctstudio, or a new file name")
        conn = None
        try:  # a damaged file is an InputError here, not a sqlite3 error later (found by bench/fuzz.py)
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = wal")
                check = conn.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
            conn.execute("PRAGMA synchronous = NORMAL" if self.path == ":memory:" else "PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.conn = conn
            self.db = sqlite_utils.Database(conn)
            self._retrying(lambda: self._migrate_locked())
            missing = sorted(CORE_TABLES - set(self.db.table_names()))
            if missing:
                raise sqlite3.DatabaseError(f"tables {', '.join(missing)} are missing")
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise
            raise InputError(f"the study database is damaged ({str(exc)[:200]})", path=self.path,
                             hint="restore it from a backup; ctstudio does not repair a study database") from None

    def _migrate_locked(self) -> None:
        # One BEGIN IMMEDIATE around all migrations serialises two processes creating the schema at once.
        with self.transaction():
            migrate(self.db)

    @staticmethod
    def _retrying(fn, attempts: int = 50):
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (1 + i % 5))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably, WAL + synchronous=FULL) when the block ends."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _insert(self, conn, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        qs = ", ".join("?" for _ in row)
        cur = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({qs})", list(row.values()))
        return int(cur.lastrowid)

    def log(self, conn, kind: str, session_id: int | None = None, **payload) -> None:
        self._insert(conn, "events", {"ts": now(), "session_id": session_id, "kind": kind,
                                      "payload": json.dumps(payload, sort_keys=True, default=str)})

    # -- studies and cases ------------------------------------------------------------------
    def ensure_study(self, spec, cases) -> int:
        """Register a study and its cases (tokens drawn now), or return the existing one.

        A study of the same name whose spec asks something else is refused (rename the study).
        """
        from ctstudio.studies.schedule import new_token

        row = self.study_by_name(spec.name)
        digest = spec.digest()
        if row is not None:
            if row["spec_digest"] != digest:
                raise ConfigError(f"the database already holds a study named {spec.name!r} with a different spec",
                                  path=self.path, hint="give the changed study a new study.name, or use another --db")
            return int(row["id"])
        with self.transaction() as conn:
            again = conn.execute("SELECT id FROM studies WHERE name = ?", [spec.name]).fetchone()
            if again:
                return int(again[0])
            sid = self._insert(conn, "studies", {"name": spec.name, "kind": spec.kind, "seed": spec.seed,
                                                 "spec_json": spec.to_json(), "spec_digest": digest,
                                                 "created_at": now()})
            for c in cases:
                self._insert(conn, "cases", {"token": new_token(), "study_id": sid, "cls": c.cls, "path": c.path})
            self.log(conn, "study_created", None, study_id=sid, name=spec.name, n_cases=len(cases))
        return sid

    def study_by_name(self, name: str) -> dict | None:
        rows = list(self.db["studies"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def study(self, study_id: int) -> dict:
        return self.db["studies"].get(study_id)

    def studies(self) -> list[dict]:
        return list(self.db["studies"].rows)

    def spec_of(self, study_id: int):
        from ctstudio.studies.spec import StudySpec

        try:
            return StudySpec.from_dict(json.loads(self.study(study_id)["spec_json"]))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # found by bench/fuzz.py
            raise InputError(f"the study's stored spec is damaged ({type(exc).__name__}: {str(exc)[:200]})",
                             path=self.path, hint="restore the database from a backup") from None

    def cases(self, study_id: int) -> list[dict]:
        return list(self.db["cases"].rows_where("study_id = ?", [study_id], order_by="token"))

    def case_path(self, token: str) -> str:
        return self.db["cases"].get(token)["path"]

    # -- readers and sessions -----------------------------------------------------------------
    SURVEY_FIELDS = ("radiologist", "board_certified", "trainee", "specialty", "screening", "years_experience")

    def ensure_reader(self, study_id: int, code: str, survey: dict[str, Any] | None = None) -> int:
        code = code.strip()
        if not code:
            raise InputError("a reader needs a non-empty code (a pseudonym, not a name)")
        survey = dict(survey or {})
        unknown = set(survey) - set(self.SURVEY_FIELDS) - {"survey_note"}
        if unknown:
            raise InputError(f"unknown survey field(s): {', '.join(sorted(unknown))}")
        for k in ("radiologist", "board_certified", "trainee", "screening"):
            if k in survey and survey[k] is not None:
                survey[k] = int(bool(survey[k]))
        with self.transaction() as conn:
            r = conn.execute("SELECT id FROM readers WHERE study_id = ? AND code = ?", [study_id, code]).fetchone()
            if r:
                return int(r[0])
            rid = self._insert(conn, "readers", {"study_id": study_id, "code": code, "created_at": now(), **survey})
            self.log(conn, "reader_registered", None, study_id=study_id, reader_id=rid, **survey)
        return rid

    def reader(self, reader_id: int) -> dict:
        return self.db["readers"].get(reader_id)

    def open_session(self, study_id: int, reader_id: int, trials, seed: int) -> tuple[int, bool]:
        """The reader's unfinished session (resumed), or a new one with ``trials`` stored.

        Returns (session_id, resumed)."""
        with self.transaction() as conn:
            r = conn.execute("SELECT id FROM sessions WHERE study_id = ? AND reader_id = ? AND state != 'finished' "
                             "ORDER BY id LIMIT 1", [study_id, reader_id]).fetchone()
            if r:
                self.log(conn, "session_resumed", int(r[0]))
                return int(r[0]), True
            sid = self._insert(conn, "sessions", {"study_id": study_id, "reader_id": reader_id, "seed": seed,
                                                  "state": "open", "created_at": now()})
            for t in trials:
                self._insert(conn, "trials", {"session_id": sid, "question_index": t.index, "kind": t.kind,
                                              "left_token": t.left, "right_token": t.right, "real_side": t.real_side,
                                              "case_token": t.case, "cls": t.cls})
            self.log(conn, "session_started", sid, reader_id=reader_id, n_trials=len(trials))
        return sid, False

    def sessions_of(self, reader_id: int) -> list[dict]:
        return list(self.db["sessions"].rows_where("reader_id = ?", [reader_id], order_by="id"))

    def trials(self, session_id: int) -> list[dict]:
        return list(self.db["trials"].rows_where("session_id = ?", [session_id], order_by="question_index"))

    def answered_indices(self, session_id: int) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT question_index FROM responses WHERE session_id = ?",
                                                [session_id])}

    def record_response(self, session_id: int, trial_row: dict, **fields) -> int:
        """Commit one answer (and its event) durably; refuses a second answer to the same trial."""
        row = {"trial_id": trial_row["id"], "session_id": session_id, "question_index": trial_row["question_index"],
               "real_side": trial_row["real_side"], "answered_at": now()}
        for k in ("window", "zoom", "scores"):
            if k in fields:
                fields[f"{k}_json"] = json.dumps(fields.pop(k), sort_keys=True)
        row.update(fields)
        try:
            with self.transaction() as conn:
                rid = self._insert(conn, "responses", row)
                self.log(conn, "answer", session_id, question_index=trial_row["question_index"],
                         choice=row.get("choice"), response_ms=row.get("response_ms"))
        except sqlite3.IntegrityError:
            raise InputError(f"question {trial_row['question_index']} of session {session_id} is already answered") from None
        return rid

    def set_session_state(self, session_id: int, state: str, event: str | None = None, **payload) -> None:
        with self.transaction() as conn:
            if state == "finished":
                conn.execute("UPDATE sessions SET state = ?, finished_at = ? WHERE id = ?", [state, now(), session_id])
            else:
                conn.execute("UPDATE sessions SET state = ? WHERE id = ?", [state, session_id])
            self.log(conn, event or f"session_{state}", session_id, **payload)

    def log_event(self, kind: str, session_id: int | None = None, **payload) -> None:
        with self.transaction() as conn:
            self.log(conn, kind, session_id, **payload)

    def events(self, session_id: int | None = None) -> list[dict]:
        if session_id is None:
            return list(self.db["events"].rows_where(order_by="id"))
        return list(self.db["events"].rows_where("session_id = ?", [session_id], order_by="id"))

    def responses_table(self, study_id: int | None = None) -> list[dict]:
        """Raw responses joined with trial, reader and study (blinded tokens + class; no paths)."""
        sql = """
        SELECT st.name AS study, st.kind AS kind, se.id AS session_id, rd.code AS reader,
               rd.radiologist, rd.board_certified, rd.trainee, rd.specialty, rd.screening, rd.years_experience,
               r.question_index, t.left_token, t.right_token, t.case_token, t.cls AS case_class,
               r.real_side, r.choice, r.correct, r.response_ms, r.scores_json, r.comment,
               r.window_json, r.zoom_json, r.answered_at
        FROM responses r JOIN trials t ON r.trial_id = t.id JOIN sessions se ON r.session_id = se.id
        JOIN readers rd ON se.reader_id = rd.id JOIN studies st ON se.study_id = st.id
        """
        args: list[Any] = []
        if study_id is not None:
            sql += " WHERE st.id = ?"
            args.append(study_id)
        sql += " ORDER BY st.id, se.id, r.question_index"
        cur = self.conn.execute(sql, args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
