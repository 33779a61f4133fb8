"""Merging the study databases of several sites (workstations) into one.

``merge_databases(out, sources)`` copies every study, reader, session, trial, answer and audit event of
each source database into ``out`` (created when missing):

* **Same study, checked**: a study is matched by name, and its spec must be the same *by content* (the
  digest of the stored spec, which does not depend on where the study folder lies). A different spec,
  or a case whose content (SHA-256) is not among the output's cases, is refused before anything is
  written. Case tokens differ between databases created separately; answers are re-keyed to the
  output's token of the same content.
* **Readers kept apart per site**: a source's own readers get the source's site name (``meta.site``,
  default the host name; set it with ``ctstudio study site --db F NAME``), so R1 of site A and R1 of
  site B are two readers (shown as ``A/R1`` and ``B/R1``). Readers that already carry a site (a merged
  database merged again) keep it. Two sources with local readers and the same site name are refused
  (name the sites first), because their readers could not be told apart.
* **Idempotent**: a session is identified by its origin (``<database id>:<session id>``, set where it was
  started) and its start time, an event by its origin and time; whatever is already in ``out`` is not
  added again, so merging twice adds nothing, and merging again after a site went on adds only what is
  new (a session's later answers and its finished state).
* **Audit trail kept**: the sources' events are copied (append-only in ``out`` too) with their origin,
  and each merge appends a ``merged`` event naming the source, its site and what was added.

Survey *profiles* (the per-database reuse of a reader's survey) are not merged: every reader row carries
its survey answers. Sources are opened read-only and never changed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctstudio.errors import ConfigError, InputError
from ctstudio.studies.store import Store, now

SURVEY_COLUMNS = ("radiologist", "board_certified", "trainee", "specialty", "screening", "years_experience",
                  "survey_note", "survey_skipped")


@dataclass
class MergeSummary:
    """What one source added to the merged database."""

    source: str
    site: str
    studies: int = 0
    readers: int = 0
    sessions: int = 0
    answers: int = 0
    events: int = 0
    updated_sessions: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "site": self.site, "studies": self.studies, "readers": self.readers,
                "sessions": self.sessions, "answers": self.answers, "events": self.events,
                "updated_sessions": self.updated_sessions}


def _rows(conn: sqlite3.Connection, sql: str, args=()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, list(args))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _spec_digest(spec_json: str, path: str) -> str:
    from ctstudio.studies.spec import StudySpec

    try:
        return StudySpec.from_dict(json.loads(spec_json)).digest()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InputError(f"a stored study spec is damaged ({type(exc).__name__})", path=path,
                         hint="restore the database from a backup") from None


class _Source:
    """One source database, read completely (read-only) before anything is written."""

    def __init__(self, path: Path):
        self.path = path
        store = Store(path, create=False)  # refuses a foreign or empty file
        try:
            conn = store.conn
            self.db_id = store.meta("db_id") or ""
            self.site = store.meta("site") or ""
            self.studies = _rows(conn, "SELECT * FROM studies ORDER BY id")
            self.cases = _rows(conn, "SELECT * FROM cases")
            self.readers = _rows(conn, "SELECT * FROM readers ORDER BY id")
            self.sessions = _rows(conn, "SELECT * FROM sessions ORDER BY id")
            self.trials = _rows(conn, "SELECT * FROM trials ORDER BY session_id, question_index")
            self.responses = _rows(conn, "SELECT * FROM responses ORDER BY id")
            self.events = _rows(conn, "SELECT * FROM events ORDER BY id")
        finally:
            store.close()
        for s in self.sessions:  # sessions started before origins were recorded
            s["origin"] = s.get("origin") or f"{self.db_id}:{s['id']}"
        for e in self.events:
            e["origin"] = e.get("origin") or f"{self.db_id}:{e['id']}"
        self.has_local_readers = any(not (r.get("site") or "") for r in self.readers)

    def reader_site(self, reader: dict) -> str:
        return reader.get("site") or self.site


def _check(out: Store, sources: list[_Source]) -> None:
    """Every refusal, before anything is written."""
    by_site: dict[str, _Source] = {}
    for src in sources:
        if src.has_local_readers:
            other = by_site.get(src.site)
            if other is not None:
                same = " (copies of one database)" if other.db_id == src.db_id else ""
                raise ConfigError(f"{other.path} and {src.path} both name their site {src.site!r}{same}; their "
                                  "readers could not be kept apart", path=src.path,
                                  hint="name each site first: ctstudio study site --db SITE.db NAME")
            by_site[src.site] = src
    out_studies = {s["name"]: s for s in _rows(out.conn, "SELECT * FROM studies")}
    seen: dict[str, tuple[str, _Source]] = {}
    for src in sources:
        hashes = {c["token"]: c.get("sha256") for c in src.cases}
        for st in src.studies:
            digest = _spec_digest(st["spec_json"], str(src.path))
            ref = out_studies.get(st["name"])
            ref_digest = _spec_digest(ref["spec_json"], out.path) if ref else None
            if ref_digest is None and st["name"] in seen:
                ref_digest = seen[st["name"]][0]
            if ref_digest is not None and ref_digest != digest:
                raise ConfigError(f"study {st['name']!r} in {src.path} has a different spec from the one being "
                                  "merged (its questions, pools, display or settings differ); refusing to merge "
                                  "answers to different questions", path=src.path,
                                  hint="merge only databases of the same study spec")
            seen.setdefault(st["name"], (digest, src))
            mine = [c for c in src.cases if c["study_id"] == st["id"]]
            if any(not c.get("sha256") for c in mine):
                raise InputError(f"study {st['name']!r} in {src.path} has cases without content hashes (written "
                                 "by an older ctstudio); its cases cannot be matched", path=src.path,
                                 hint="open the study once with this ctstudio version at its site, then merge")
            if ref is not None:
                known = {r[0] for r in out.conn.execute("SELECT sha256 FROM cases WHERE study_id = ?", [ref["id"]])}
                missing = [c for c in mine if hashes[c["token"]] not in known]
                if missing:
                    raise ConfigError(f"study {st['name']!r} in {src.path} has {len(missing)} case(s) whose content "
                                      "is not among the merged study's cases (the pools hold other files)",
                                      path=src.path, hint="every site must use the same case files, unchanged")


def _insert(conn, table: str, row: dict[str, Any]) -> int:
    cols = ", ".join(row)
    cur = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
    return int(cur.lastrowid)


def _merge_one(out: Store, conn, src: _Source) -> MergeSummary:
    from ctstudio.studies.schedule import new_token

    summary = MergeSummary(source=str(src.path), site=src.site)
    study_map: dict[int, int] = {}
    token_map: dict[str, str] = {}
    for st in src.studies:
        row = conn.execute("SELECT id FROM studies WHERE name = ?", [st["name"]]).fetchone()
        if row is None:
            sid = _insert(conn, "studies", {k: st[k] for k in ("name", "kind", "seed", "spec_json", "spec_digest",
                                                                "created_at")})
            summary.studies += 1
        else:
            sid = int(row[0])
        study_map[st["id"]] = sid
        by_hash = {h: t for t, h in conn.execute("SELECT token, sha256 FROM cases WHERE study_id = ?", [sid])}
        for c in (c for c in src.cases if c["study_id"] == st["id"]):
            if c["sha256"] in by_hash:
                token_map[c["token"]] = by_hash[c["sha256"]]
                continue
            token = c["token"]
            if conn.execute("SELECT 1 FROM cases WHERE token = ?", [token]).fetchone():
                token = new_token()
            _insert(conn, "cases", {"token": token, "study_id": sid, "cls": c["cls"], "path": c["path"],
                                    "sha256": c["sha256"]})
            by_hash[c["sha256"]] = token
            token_map[c["token"]] = token
    reader_map: dict[int, int] = {}
    for rd in src.readers:
        sid = study_map[rd["study_id"]]
        site = src.reader_site(rd)
        row = conn.execute("SELECT id FROM readers WHERE study_id = ? AND site = ? AND code = ?",
                           [sid, site, rd["code"]]).fetchone()
        if row is None:
            reader_map[rd["id"]] = _insert(conn, "readers", {"study_id": sid, "code": rd["code"], "site": site,
                                                             "created_at": rd["created_at"],
                                                             **{k: rd.get(k) for k in SURVEY_COLUMNS}})
            summary.readers += 1
        else:
            reader_map[rd["id"]] = int(row[0])
    session_map: dict[int, int] = {}
    trial_map: dict[int, int] = {}
    src_trials: dict[int, list[dict]] = {}
    for t in src.trials:
        src_trials.setdefault(t["session_id"], []).append(t)
    for se in src.sessions:
        row = conn.execute("SELECT id, state FROM sessions WHERE origin = ? AND created_at = ?",
                           [se["origin"], se["created_at"]]).fetchone()
        if row is None:
            new_id = _insert(conn, "sessions", {"study_id": study_map[se["study_id"]],
                                                "reader_id": reader_map[se["reader_id"]], "seed": se["seed"],
                                                "state": se["state"], "created_at": se["created_at"],
                                                "finished_at": se["finished_at"], "origin": se["origin"]})
            summary.sessions += 1
        else:
            new_id = int(row[0])
            if row[1] != se["state"] and row[1] != "finished":  # a site went on: its later state wins
                conn.execute("UPDATE sessions SET state = ?, finished_at = ? WHERE id = ?",
                             [se["state"], se["finished_at"], new_id])
                summary.updated_sessions += 1
        session_map[se["id"]] = new_id
        have = {q: tid for tid, q in conn.execute("SELECT id, question_index FROM trials WHERE session_id = ?",
                                                   [new_id])}
        for t in src_trials.get(se["id"], []):
            if t["question_index"] in have:
                trial_map[t["id"]] = have[t["question_index"]]
                continue
            trial_map[t["id"]] = _insert(conn, "trials", {
                "session_id": new_id, "question_index": t["question_index"], "kind": t["kind"],
                "left_token": token_map.get(t["left_token"]), "right_token": token_map.get(t["right_token"]),
                "real_side": t["real_side"], "case_token": token_map.get(t["case_token"]), "cls": t["cls"]})
    for r in src.responses:
        tid = trial_map[r["trial_id"]]
        if conn.execute("SELECT 1 FROM responses WHERE trial_id = ?", [tid]).fetchone():
            continue  # answers are never duplicated
        row = {k: v for k, v in r.items() if k not in ("id", "trial_id", "session_id")}
        _insert(conn, "responses", {**row, "trial_id": tid, "session_id": session_map[r["session_id"]]})
        summary.answers += 1
    have_events = {(o, ts) for o, ts in conn.execute("SELECT origin, ts FROM events WHERE origin IS NOT NULL")}
    for e in src.events:
        if (e["origin"], e["ts"]) in have_events:
            continue
        sess = session_map.get(e["session_id"]) if e["session_id"] is not None else None
        _insert(conn, "events", {"ts": e["ts"], "session_id": sess, "kind": e["kind"], "payload": e["payload"],
                                 "origin": e["origin"]})
        summary.events += 1
    return summary


def merge_databases(out_path: str | Path, sources: list[str | Path]) -> list[MergeSummary]:
    """Merge the study databases ``sources`` into ``out_path`` (see the module doc); returns what each
    source added. Nothing is written when any check fails."""
    out_p = Path(out_path)
    if not sources:
        raise InputError("give the databases to merge", hint="ctstudio study merge --out merged.db site1.db site2.db")
    paths: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise InputError("no such study database", path=p, hint="check the paths of the site databases")
        if out_p.exists() and p.resolve() == out_p.resolve():
            raise InputError("the merged database cannot be one of its sources", path=p,
                             hint="give --out a new file (or an earlier merged database)")
        if any(p.resolve() == q.resolve() for q in paths):
            continue  # the same file named twice adds nothing
        paths.append(p)
    srcs = [_Source(p) for p in paths]
    out = Store(out_p, create=not out_p.exists() or out_p.stat().st_size == 0)
    try:
        _check(out, srcs)
        results = []
        with out.transaction() as conn:
            for src in srcs:
                s = _merge_one(out, conn, src)
                if not any(v for k, v in s.as_dict().items() if k not in ("source", "site")):
                    results.append(s)  # nothing new: merging again changes nothing, not even the log
                    continue
                out.log(conn, "merged", None, source=str(src.path), source_db_id=src.db_id, site=src.site,
                        at=now(), **{k: v for k, v in s.as_dict().items() if k not in ("source", "site")})
                results.append(s)
        return results
    finally:
        out.close()
