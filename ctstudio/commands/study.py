"""``ctstudio study ...``: blinded reader studies from the command line.

* ``study demo DIR``              write the demo templates + cases (from the bundled sample) into DIR
* ``study new SPEC --db F``       validate a spec, check every case file, register the study
* ``study run SPEC --db F --reader CODE``  a headless, scripted reader session (resumes where it
                                  stopped; prints one JSON line per committed answer)
* ``study audit SPEC [--json]``   what could tell the pools apart besides anatomy
* ``study analyze --db F --out DIR [--json]``  statistics, tables and plots
* ``study export --db F --out responses.csv``  the raw responses
* ``study status --db F``         studies, readers and sessions in a database
* ``study site --db F [NAME]``    show or set the site name of a database (before merging)
* ``study merge --out M A B ...`` merge the databases of several sites (same spec; idempotent)
"""

from __future__ import annotations

import json
import sys

NAME = "study"
HELP = "blinded reader studies: demo, new, run, audit, analyze, export, status, site, merge"
DESCRIPTION = ("Blinded reader studies: real-vs-synthetic forced choice (pairs) and anatomical continuity "
               "scoring, logged to SQLite, with the papers' statistics. `ctstudio study ACTION --help` "
               "describes each action.")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="study_cmd", metavar="ACTION", required=True)

    d = sub.add_parser("demo", help="write the demo study templates and cases into a folder")
    d.add_argument("dir", help="output folder (new or empty)")
    d.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")

    n = sub.add_parser("new", help="validate a study spec, check its case files and register it in a database")
    n.add_argument("spec", help="study spec (.toml)")
    n.add_argument("--db", required=True, help="study database file (created when missing)")

    r = sub.add_parser("run", help="a headless, scripted reader session (for tests, demos and automation)")
    r.add_argument("spec", help="study spec (.toml)")
    r.add_argument("--db", required=True, help="study database file")
    r.add_argument("--reader", required=True, help="reader code (a pseudonym)")
    r.add_argument("--survey", default="{}",
                   help='survey answers as JSON, e.g. \'{"radiologist": true, "board_certified": false, '
                        '"trainee": true, "specialty": "neuro", "screening": false, "years_experience": 3}\'')
    r.add_argument("--answers", help="comma-separated answers in order: left/right (pair) or a score "
                                     "1..3 for every structure (continuity, e.g. 3 applies 3 to all)")
    r.add_argument("--policy", default="random", choices=("random", "left", "right", "oracle"),
                   help="how to answer when --answers runs out: random, always left/right, or oracle "
                        "(correct with probability --accuracy)")
    r.add_argument("--accuracy", type=float, default=0.5, help="oracle policy: probability of a correct answer")
    r.add_argument("--seed", type=int, default=0, help="seed of the answering policy")
    r.add_argument("--delay-ms", type=float, default=0.0, help="pause before each answer (simulated reading)")
    r.add_argument("--max", type=int, default=None, help="stop after this many answers (an interrupted session)")
    r.add_argument("--no-images", action="store_true", help="do not load and prepare the images")
    r.add_argument("--no-min-view", action="store_true",
                   help="answer without waiting for the spec's min_view_ms (scripted readers only; logged)")

    a = sub.add_parser("audit", help="check the pools for anything that could tell real from synthetic")
    a.add_argument("spec", help="study spec (.toml)")
    a.add_argument("--json", action="store_true", help="print machine-readable JSON")
    a.add_argument("--strict", action="store_true", help="exit with status 1 when a finding separates the pools")

    z = sub.add_parser("analyze", help="statistics, tables and plots of a study database")
    z.add_argument("--db", required=True, help="study database file")
    z.add_argument("--out", required=True, help="output folder for CSV tables, plots and summary")
    z.add_argument("--study", help="only this study (by name)")
    z.add_argument("--json", action="store_true", help="print the summary as JSON")
    z.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo test")

    e = sub.add_parser("export", help="export the raw responses as CSV")
    e.add_argument("--db", required=True, help="study database file")
    e.add_argument("--out", required=True, help="CSV file to write")
    e.add_argument("--study", help="only this study (by name)")

    s = sub.add_parser("status", help="list the studies, readers and sessions in a database")
    s.add_argument("--db", required=True, help="study database file")
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")

    si = sub.add_parser("site", help="show or set the site name of a study database (readers are kept apart "
                                     "per site when databases are merged)")
    si.add_argument("--db", required=True, help="study database file")
    si.add_argument("name", nargs="?", help="the new site name (default: show the current one)")

    m = sub.add_parser("merge", help="merge the databases of several sites into one (same study spec, checked; "
                                     "reader codes kept apart per site; merging twice adds nothing)")
    m.add_argument("--out", required=True, help="merged database (created when missing; an earlier merged "
                                                "database gets only what is new)")
    m.add_argument("sources", nargs="+", help="the site databases (read only)")
    m.add_argument("--json", action="store_true", help="print what each source added as JSON")


def _existing_db(path):
    from pathlib import Path

    from ctstudio.errors import InputError
    from ctstudio.studies.store import Store

    if not Path(path).exists():
        raise InputError("no such study database", path=path, hint="run a study first, or check --db")
    return Store(path, create=False)


def _emit(obj) -> None:
    print(json.dumps(obj, sort_keys=True, default=str), flush=True)


def _run_session(args) -> int:
    import numpy as np

    from ctstudio.errors import InputError
    from ctstudio.studies.session import ReaderSession
    from ctstudio.studies.spec import load_spec
    from ctstudio.studies.store import Store

    spec = load_spec(args.spec)
    try:
        survey = json.loads(args.survey)
    except json.JSONDecodeError as exc:
        raise InputError(f"--survey is not valid JSON ({exc})") from None
    if not isinstance(survey, dict):
        raise InputError("--survey must be a JSON object")
    if not 0 <= args.accuracy <= 1:
        raise InputError(f"--accuracy must be between 0 and 1, got {args.accuracy}")
    store = Store(args.db)
    sess = ReaderSession.open(store, spec, args.reader, survey, prefetch=not args.no_images,
                              enforce_min_view=not args.no_min_view)
    answers = [a.strip() for a in args.answers.split(",")] if args.answers else []
    # The policy's random stream continues where a resumed session stopped.
    rng = np.random.default_rng([args.seed, sess.n_answered])
    _emit({"event": "resumed" if sess.resumed else "started", "session": sess.session_id,
           "at_question": sess.position, "n_trials": sess.n_trials, "state": sess.state})
    sess.begin()
    done = 0
    try:
        while sess.current is not None and (args.max is None or done < args.max):
            trial = sess.current
            if not args.no_images:
                sess.images(trial)
            if args.delay_ms:
                import time

                time.sleep(args.delay_ms / 1000.0)
            wait = sess.ms_until_answer()  # a scripted reader too reads for the minimum time
            if wait > 0:
                import time

                time.sleep(wait / 1000.0)
            k = sess.position - 1
            given = answers[k] if k < len(answers) else None
            if trial["kind"] == "pair":
                if given is not None:
                    choice = given
                elif args.policy in ("left", "right"):
                    choice = args.policy
                elif args.policy == "oracle":
                    right = rng.random() < args.accuracy
                    choice = trial["real_side"] if right else ("left" if trial["real_side"] == "right" else "right")
                else:
                    choice = "left" if rng.random() < 0.5 else "right"
                q = sess.position
                sess.answer(choice=choice)
                _emit({"committed": q, "choice": choice})
            else:
                n_scale = len(spec.scale)
                if given is not None:
                    try:
                        v = int(given)
                    except ValueError:
                        raise InputError(f"--answers: continuity scores are integers 1..{n_scale}, got {given!r}") from None
                    scores = {s: v for s in spec.structures}
                elif args.policy == "oracle":
                    hi = n_scale if trial["cls"] == "real" else max(1, n_scale - 1)
                    scores = {s: int(hi if rng.random() < args.accuracy else rng.integers(1, n_scale + 1))
                              for s in spec.structures}
                else:
                    scores = {s: int(rng.integers(1, n_scale + 1)) for s in spec.structures}
                q = sess.position
                sess.answer(scores=scores)
                _emit({"committed": q, "scores": scores})
            if sess.current is not None:
                sess.shown()
            done += 1
    finally:
        sess.close()
    _emit({"event": "finished" if sess.current is None else "stopped", "answered": sess.n_answered,
           "n_trials": sess.n_trials})
    store.close()
    return 0


def run(args) -> int:
    cmd = args.study_cmd
    if cmd == "demo":
        from ctstudio.studies.demo import make_demo

        specs = make_demo(args.dir, overwrite=args.overwrite)
        print("wrote the demo study (its 'synthetic' pool is degraded copies, NOT model output):")
        for s in specs:
            print(f"  {s}")
        print(f"try: ctstudio study audit {specs[-1]}")
        return 0
    if cmd == "new":
        from ctstudio.studies.session import register_study
        from ctstudio.studies.spec import load_spec
        from ctstudio.studies.store import Store

        spec = load_spec(args.spec)
        with Store(args.db) as store:
            sid = register_study(store, spec)
            cases = store.cases(sid)
        n_real = sum(c["cls"] == "real" for c in cases)
        print(f"study {spec.name!r} (id {sid}, kind {spec.kind}): {n_real} real and {len(cases) - n_real} synthetic "
              f"cases, {spec.trials_per_reader} trials per reader, in {args.db}")
        return 0
    if cmd == "run":
        return _run_session(args)
    if cmd == "audit":
        from ctstudio.studies.audit import audit_spec, format_audit
        from ctstudio.studies.spec import load_spec

        rep = audit_spec(load_spec(args.spec))
        print(json.dumps(rep, indent=2, default=str) if args.json else format_audit(rep))
        return 1 if args.strict and rep["n_high"] else 0
    if cmd == "analyze":
        from ctstudio.studies.report import to_jsonable, write_report

        with _existing_db(args.db) as store:
            results = write_report(store, args.out, study=args.study, seed=args.seed)
        if args.json:
            out = []
            for r in results:
                j = to_jsonable({k: v for k, v in r.items() if k != "text"})
                out.append(j)
            print(json.dumps(out if len(out) > 1 else out[0], indent=2, default=str))
        else:
            for r in results:
                print(r["text"])
                print(f"\nwrote {len(r['files'])} files to {r['out_dir']}: {', '.join(r['files'])}\n")
        return 0
    if cmd == "export":
        from pathlib import Path

        from ctstudio.errors import InputError
        from ctstudio.studies.report import export_responses_csv

        with _existing_db(args.db) as store:
            sid = None
            if args.study:
                row = store.study_by_name(args.study)
                if row is None:
                    raise InputError(f"no study named {args.study!r}", path=args.db)
                sid = row["id"]
            rows = store.responses_table(sid)
        out = Path(args.out)
        if not out.parent.exists():
            raise InputError("the output folder does not exist", path=out.parent)
        export_responses_csv(rows, out)
        print(f"wrote {len(rows)} responses to {out}")
        return 0
    if cmd == "status":
        with _existing_db(args.db) as store:
            report = []
            for s in store.studies():
                sessions = list(store.db.query(
                    "SELECT se.id, rd.code AS reader, se.state, COUNT(t.id) AS n_trials, "
                    "(SELECT COUNT(*) FROM responses r WHERE r.session_id = se.id) AS answered "
                    "FROM sessions se JOIN readers rd ON se.reader_id = rd.id "
                    "LEFT JOIN trials t ON t.session_id = se.id WHERE se.study_id = ? GROUP BY se.id", [s["id"]]))
                report.append({"study": s["name"], "kind": s["kind"], "sessions": sessions})
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for s in report:
                print(f"{s['study']} ({s['kind']}): {len(s['sessions'])} session(s)")
                for se in s["sessions"]:
                    print(f"  session {se['id']} reader {se['reader']}: {se['answered']}/{se['n_trials']} {se['state']}")
        return 0
    if cmd == "site":
        with _existing_db(args.db) as store:
            if args.name is not None:
                store.set_site(args.name)
            print(f"site: {store.meta('site')}  (database id {store.meta('db_id')})")
        return 0
    if cmd == "merge":
        from ctstudio.studies.merge import merge_databases

        added = merge_databases(args.out, args.sources)
        if args.json:
            _emit([a.as_dict() for a in added])
        else:
            for a in added:
                print(f"{a.source} (site {a.site}): +{a.studies} studies, +{a.readers} readers, +{a.sessions} "
                      f"sessions, +{a.answers} answers, +{a.events} events"
                      + (f", {a.updated_sessions} sessions updated" if a.updated_sessions else ""))
            print(f"merged into {args.out}")
        return 0
    print(f"unknown study action {cmd!r}", file=sys.stderr)  # pragma: no cover - argparse refuses it
    return 2
