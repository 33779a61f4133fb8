"""The one study store: SQLite through sqlite-utils.

* WAL journal, a busy timeout, so two app instances (or an app and a script) on one file both
  work; every write is one short ``BEGIN IMMEDIATE`` transaction.
* Plain-function migrations (as in simonw/llm ``migrations.py``): each function in
  :data:`MIGRATIONS` runs once, in order, and its name is recorded in ``_ctstudio_migrations``.
  Never edit a migration that shipped; add a new one.
* Each answer (response row + event) is committed before the caller shows the next trial.
* ``events`` is an append-only audit trail (triggers refuse UPDATE and DELETE).

Tables: studies, cases, readers (with the survey), sessions, trials, responses, events, plus
``profiles`` (one survey profile per reader code in this database, reused by every study) and
``meta`` (this database's site name and a random id that tells databases apart when merged).

Readers are identified by a **code** (a pseudonym such as R7 or AB12), normalised to upper case
without surrounding whitespace (:func:`normalise_reader_code`); names are refused. A study is
identified by its spec digest (what it asks, not where it lies) and its cases by the SHA-256 of
their content, so a study folder moved elsewhere resumes: the cases are found again by content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import socket
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

from ctstudio import app_version
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


@migration
def m004_profiles_sites_hashes(db: sqlite_utils.Database) -> None:
    # Survey answers left unanswered stay NULL; the fields a reader chose not to answer are listed.
    db["readers"].add_column("survey_skipped", str)
    # Readers from several sites (merged databases) are kept apart by site.
    db["readers"].add_column("site", str)
    db.execute("UPDATE readers SET site = ''")
    db.execute("DROP INDEX IF EXISTS idx_readers_study_id_code")
    db["readers"].create_index(["study_id", "site", "code"], unique=True)
    # Cases are identified by content, so a moved study folder finds them again.
    db["cases"].add_column("sha256", str)
    # Where a session (and an event) came from: "<database id>:<row id>", kept through merges.
    db["sessions"].add_column("origin", str)
    db["events"].add_column("origin", str)
    db["profiles"].create({"code": str, "radiologist": int, "board_certified": int, "trainee": int,
                           "specialty": str, "screening": int, "years_experience": float,
                           "survey_skipped": str, "created_at": str}, pk="code")
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["meta"].insert_all([{"key": "db_id", "value": secrets.token_hex(8)},
                           {"key": "site", "value": socket.gethostname() or "local"}])


@migration
def m005_app_version(db: sqlite_utils.Database) -> None:
    # Which ctstudio (version + commit) started each session and recorded each answer; older rows stay NULL.
    db["sessions"].add_column("app_version", str)
    db["responses"].add_column("app_version", str)


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


#: a site's name: shown before reader codes in merged databases ("HOSP-A/R7")
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")

READER_CODE = re.compile(r"^[A-Z]{1,4}-?[0-9]{1,4}$")


def normalise_reader_code(code: str) -> str:
    """A reader code as stored: upper case, no surrounding whitespace ("r9 " and "R9" are one reader).

    A code is 1-4 letters then 1-4 digits (R1, R12, AB3, R-07); anything else -- a name, spaces,
    punctuation -- is refused with a message that says so."""
    c = (code or "").strip().upper()
    if not c:
        raise InputError("a reader needs a code (a pseudonym such as R7, not a name)")
    if not READER_CODE.match(c):
        raise InputError(f"{code.strip()!r} is not a reader code: use 1-4 letters then 1-4 digits, such as R7 or "
                         "AB12 (a pseudonym, never your name)", hint="ask the study owner for your reader code")
    return c


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a case's content: a file's bytes, or a folder's files (sorted relative names + bytes)."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


#: the tables every study database has (m001); a database without one of them is damaged
CORE_TABLES = frozenset({"studies", "cases", "readers", "sessions", "trials", "responses", "events"})


class Store:
    """A study database file (``":memory:"`` for tests). ``create=False`` refuses a file that is not
    already a ctstudio study database (a foreign or empty SQLite file is left untouched)."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0, create: bool = True):
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
        if not create:
            p = Path(self.path)
            ok = p.exists() and p.stat().st_size > 0
            if ok:
                probe = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
                try:
                    ok = probe.execute("SELECT 1 FROM sqlite_master WHERE name = '_ctstudio_migrations'").fetchone()
                except sqlite3.DatabaseError:
                    ok = False
                finally:
                    probe.close()
            if not ok:
                raise InputError("not a ctstudio study database (empty, or a SQLite file of another program); "
                                 "it was left unchanged", path=p, hint="check --db")
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
            conn.text_factory = self._decode_text
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

    def _decode_text(self, raw: bytes) -> str:
        """Text read from the database; text that is not UTF-8 (a damaged or tampered file) is an InputError
        naming the database, never a sqlite3 / Unicode exception (found by bench/fuzz.py)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the study database holds text that is not UTF-8: it is damaged or was edited by "
                             "another program", path=self.path,
                             hint="restore it from a backup; ctstudio never writes such text") from None

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

    # -- this database -----------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_site(self, name: str) -> None:
        """Name this database's site (shown in merged analyses; default: the host name)."""
        name = name.strip()
        if not SITE_NAME.match(name):
            raise InputError(f"{name!r} is not a site name: use 1-40 letters, digits, '.', '_' or '-' (no spaces "
                             "or '/'), such as HOSP-A", path=self.path)
        with self.transaction() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'site'", [name])
            self.log(conn, "site_named", None, site=name)

    # -- studies and cases ------------------------------------------------------------------
    def _study_matches(self, row: dict, spec) -> bool:
        return row["spec_digest"] == spec.digest() or row["spec_digest"] in spec.legacy_digests()

    def ensure_study(self, spec, cases) -> int:
        """Register a study and its cases (tokens drawn now, content hashed), or return the existing one.

        A study of the same name whose spec asks something else is refused (rename the study). The
        spec's folder is not part of its identity: see :meth:`relocate_cases`."""
        from ctstudio.studies.schedule import new_token

        row = self.study_by_name(spec.name)
        digest = spec.digest()
        if row is not None:
            if not self._study_matches(row, spec):
                raise ConfigError(f"the database already holds a study named {spec.name!r} with a different spec "
                                  "(its questions, pools, display or settings differ; where the files lie does not "
                                  "matter)", path=self.path,
                                  hint="give the changed study a new study.name, or use another --db")
            return int(row["id"])
        hashes = [file_sha256(c.path) for c in cases]
        with self.transaction() as conn:
            again = conn.execute("SELECT id FROM studies WHERE name = ?", [spec.name]).fetchone()
            if again:
                return int(again[0])
            sid = self._insert(conn, "studies", {"name": spec.name, "kind": spec.kind, "seed": spec.seed,
                                                 "spec_json": spec.to_json(), "spec_digest": digest,
                                                 "created_at": now()})
            for c, h in zip(cases, hashes):
                self._insert(conn, "cases", {"token": new_token(), "study_id": sid, "cls": c.cls, "path": c.path,
                                             "sha256": h})
            self.log(conn, "study_created", None, study_id=sid, name=spec.name, n_cases=len(cases))
        return sid

    def relocate_cases(self, study_id: int, cases) -> int:
        """Find a study's cases again after its folder moved: ``cases`` (resolved from the spec in its new
        place) are matched to the stored ones by content hash and their paths updated. Returns how many
        paths changed (0 when every stored path still exists). A stored case whose content is not among
        ``cases``, or a class that changed, is an error naming it."""
        stored = self.cases(study_id)
        if all(Path(c["path"]).exists() for c in stored):
            return 0
        if any(not c.get("sha256") for c in stored):
            raise InputError("the study's case files moved, and this database (written by an older ctstudio) has "
                             "no content hashes to find them again", path=self.path,
                             hint="put the study folder back where it was, or start a new database")
        by_hash = {}
        for c in cases:
            by_hash.setdefault(file_sha256(c.path), c)
        moves = []
        for row in stored:
            if Path(row["path"]).exists() and file_sha256(row["path"]) == row["sha256"]:
                continue
            new = by_hash.get(row["sha256"])
            if new is None or new.cls != row["cls"]:
                raise InputError(f"a {row['cls']} case of the study is not found (by content) in the spec's pools; "
                                 f"it was at {row['path']}", path=self.path,
                                 hint="the cases must be the same files, unchanged; check the moved folder")
            moves.append((new.path, row["token"], row["path"]))
        with self.transaction() as conn:
            for path, token, _ in moves:
                conn.execute("UPDATE cases SET path = ? WHERE token = ?", [path, token])
            self.log(conn, "cases_relocated", None, study_id=study_id, n_cases=len(moves),
                     new_folder=str(Path(moves[0][0]).parent) if moves else None)
        return len(moves)

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

    def profile(self, code: str) -> dict | None:
        """The survey profile stored for a reader code in this database (any study), or None."""
        rows = list(self.db["profiles"].rows_where("code = ?", [normalise_reader_code(code)]))
        if not rows:
            return None
        p = rows[0]
        p["survey_skipped"] = json.loads(p["survey_skipped"] or "[]")
        return p

    @classmethod
    def _clean_survey(cls, survey: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        survey = dict(survey or {})
        skipped = list(survey.pop("survey_skipped", []) or [])
        unknown = set(survey) - set(cls.SURVEY_FIELDS) - {"survey_note"}
        if unknown:
            raise InputError(f"unknown survey field(s): {', '.join(sorted(unknown))}")
        bad = set(skipped) - set(cls.SURVEY_FIELDS)
        if bad:
            raise InputError(f"unknown survey field(s) marked as skipped: {', '.join(sorted(bad))}")
        for k in ("radiologist", "board_certified", "trainee", "screening"):
            if k in survey and survey[k] is not None:
                survey[k] = int(bool(survey[k]))
        for k in skipped:
            survey[k] = None  # a skipped question stays NULL: never a default answer
        return survey, sorted(set(skipped))

    def ensure_reader(self, study_id: int, code: str, survey: dict[str, Any] | None = None,
                      update_profile: bool = False, site: str = "") -> int:
        """The reader ``code`` (normalised, validated) of a study, registered on first use.

        One profile per code: a code seen before in this database (in any study) reuses its stored
        survey; ``update_profile`` replaces it with ``survey`` (the reader confirmed a correction) and
        updates every study's copy. Unanswered survey fields stay NULL; ``survey["survey_skipped"]``
        lists the fields the reader chose not to answer."""
        code = normalise_reader_code(code)
        survey, skipped = self._clean_survey(survey)
        note = survey.pop("survey_note", None)
        with self.transaction() as conn:
            prof = conn.execute("SELECT * FROM profiles WHERE code = ?", [code]).fetchone()
            fields = {k: survey.get(k) for k in self.SURVEY_FIELDS}
            if prof is None:
                self._insert(conn, "profiles", {"code": code, **fields, "survey_skipped": json.dumps(skipped),
                                                "created_at": now()})
                self.log(conn, "profile_created", None, code=code, survey_skipped=skipped)
            elif update_profile:
                conn.execute(f"UPDATE profiles SET {', '.join(f'{k} = ?' for k in fields)}, survey_skipped = ? "
                             "WHERE code = ?", [*fields.values(), json.dumps(skipped), code])
                conn.execute(f"UPDATE readers SET {', '.join(f'{k} = ?' for k in fields)}, survey_skipped = ? "
                             "WHERE code = ? AND site = ?", [*fields.values(), json.dumps(skipped), code, site])
                self.log(conn, "profile_updated", None, code=code, survey_skipped=skipped)
            else:
                cols = [d[0] for d in conn.execute("SELECT * FROM profiles LIMIT 0").description]
                stored = dict(zip(cols, prof))
                if survey and any(survey.get(k) != stored[k] for k in survey if k in fields):
                    self.log(conn, "profile_kept", None, code=code,
                             note="a different survey was given; the stored profile was kept")
                fields = {k: stored[k] for k in self.SURVEY_FIELDS}
                skipped = json.loads(stored["survey_skipped"] or "[]")
            r = conn.execute("SELECT id FROM readers WHERE study_id = ? AND site = ? AND code = ?",
                             [study_id, site, code]).fetchone()
            if r:
                return int(r[0])
            rid = self._insert(conn, "readers", {"study_id": study_id, "code": code, "site": site,
                                                 "created_at": now(), "survey_note": note,
                                                 "survey_skipped": json.dumps(skipped), **fields})
            self.log(conn, "reader_registered", None, study_id=study_id, reader_id=rid, **fields,
                     survey_skipped=skipped)
        return rid

    def reader_by_code(self, study_id: int, code: str, site: str = "") -> dict | None:
        rows = list(self.db["readers"].rows_where("study_id = ? AND site = ? AND code = ?",
                                                  [study_id, site, normalise_reader_code(code)]))
        return rows[0] if rows else None

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
                                                  "state": "open", "created_at": now(),
                                                  "app_version": app_version()})
            conn.execute("UPDATE sessions SET origin = ? WHERE id = ?", [f"{self.meta('db_id')}:{sid}", sid])
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
               "real_side": trial_row["real_side"], "answered_at": now(), "app_version": app_version()}
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
        SELECT st.name AS study, st.kind AS kind, se.id AS session_id,
               CASE WHEN COALESCE(rd.site, '') != '' THEN rd.site || '/' || rd.code ELSE rd.code END AS reader,
               COALESCE(rd.site, '') AS site, se.state AS session_state,
               (SELECT COUNT(*) FROM sessions s2 WHERE s2.reader_id = se.reader_id AND s2.id <= se.id)
                   AS session_number,
               (SELECT COUNT(*) FROM trials t2 WHERE t2.session_id = se.id) AS session_trials,
               rd.radiologist, rd.board_certified, rd.trainee, rd.specialty, rd.screening, rd.years_experience,
               r.question_index, t.left_token, t.right_token, t.case_token, t.cls AS case_class,
               r.real_side, r.choice, r.correct, r.response_ms, r.scores_json, r.comment,
               r.window_json, r.zoom_json, r.answered_at, r.app_version
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
