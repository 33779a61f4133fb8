"""``ctstudio study ...`` end to end: demo template on the bundled sample, scripted readers, analysis,
clear errors, and a reader process killed at random points (no committed answer lost, resume exact)."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ctstudio.cli import main
from ctstudio.studies.fixtures import write_phantom_study

ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ctstudio.cli", *map(str, args)], capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env=ENV)


def run_main(capsys, *args):
    """The CLI in-process (the same entry point as the console script; one import for the whole test)."""
    capsys.readouterr()
    rc = main([str(x) for x in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.slow
def test_demo_template_runs_on_the_bundled_sample_and_analyze_writes_tables_and_plots(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert run_main(capsys, "study", "demo", demo)[0] == 0
    spec = demo / "headsq_pair_demo.toml"
    db = tmp_path / "study.db"
    surveys = [{"radiologist": True, "board_certified": True, "specialty": "neuro", "screening": False},
               {"radiologist": True, "board_certified": False, "trainee": True, "specialty": "neuro"},
               {"radiologist": False, "specialty": "none"}]
    for i, sv in enumerate(surveys):
        args = ["study", "run", spec, "--db", db, "--reader", f"R{i}", "--survey", json.dumps(sv),
                "--policy", "oracle", "--accuracy", "0.7", "--seed", i]
        if i > 0:  # the first reader waits out the demo's min_view_ms, as a reader would
            args.append("--no-min-view")
        if i == 0:  # once as a real process, as a user runs it
            r = cli(*args)
            rc, out, err = r.returncode, r.stdout, r.stderr
        else:
            rc, out, err = run_main(capsys, *args)
        assert rc == 0, err
        lines = [json.loads(x) for x in out.splitlines()]
        assert [x["committed"] for x in lines if "committed" in x] == list(range(1, 11))
        assert lines[-1]["event"] == "finished"
    out_dir = tmp_path / "out"
    rc, out, err = run_main(capsys, "study", "analyze", "--db", db, "--out", out_dir, "--json")
    assert rc == 0, err
    js = json.loads(out)
    assert js["n_readers"] == 3 and js["n_responses"] == 30 and js["kind"] == "pair"
    for f in ("responses.csv", "per_reader.csv", "groups.csv", "question_index.csv", "conover.csv", "gof.json",
              "per_reader_hist.png", "kde_by_group.png", "success_by_question.png", "summary.txt"):
        assert (out_dir / f).stat().st_size > 0, f
    assert (out_dir / "per_reader_hist.png").read_bytes()[:4] == b"\x89PNG"
    per_reader = (out_dir / "per_reader.csv").read_text().splitlines()
    assert len(per_reader) == 4 and per_reader[0].startswith("study,reader,n,correct")
    # the raw export carries tokens and classes, never a file path
    exp = tmp_path / "raw.csv"
    assert run_main(capsys, "study", "export", "--db", db, "--out", exp)[0] == 0
    raw = exp.read_text()
    assert len(raw.splitlines()) == 31 and ".nii" not in raw and str(demo) not in raw
    # the synthetic pool is the demo model's output (provenance sidecars), and the audit reports, honestly,
    # that the demo's file names say what they are
    side = json.loads((demo / "cases" / "synthetic" / "headsq_ascii_0.provenance.json").read_text())
    assert side["made_by"] == "model" and side["model"] == "score-k2-demo" and side["parameters"]["seed"] == 1000
    assert json.loads((demo / "demo.json").read_text())["synthetic_pool"] == "model"
    rc, out, err = run_main(capsys, "study", "audit", spec, "--json")
    assert rc == 0, err
    feats = {f["feature"] for f in json.loads(out)["findings"]}
    assert "class_word_in_name" in feats
    assert run_main(capsys, "study", "audit", spec, "--strict")[0] == 1
    # the continuity template runs too
    rc, out, err = run_main(capsys, "study", "run", demo / "headsq_continuity_demo.toml", "--db", db,
                            "--reader", "c1", "--no-images")
    assert rc == 0, err
    rc, out, err = run_main(capsys, "study", "analyze", "--db", db, "--out", tmp_path / "out2")
    assert rc == 0 and "headsq-continuity-demo" in out
    assert (tmp_path / "out2" / "headsq-continuity-demo" / "continuity.csv").exists()
    rc, out, err = run_main(capsys, "study", "status", "--db", db)
    assert "R0: 10/10 finished" in out


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('kind = "pair"', 'kind = "pairs"'), "'study.kind'"),
    (lambda t: t.replace("seed = 7", "seed = 'x'"), "'study.seed'"),
    (lambda t: t.replace("[display]", "[display\n"), "not valid TOML"),
    (lambda t: t.replace('real = ["real/*.nii.gz"]', 'real = ["real/case00.nii.gz", "real/gone.nii.gz"]'),
     "gone.nii.gz"),
])
def test_malformed_spec_or_missing_case_gives_a_clear_error(tmp_path, capsys, edit, message):
    spec = write_phantom_study(tmp_path, n_real=1, n_synthetic=1, trials=1)
    spec.write_text(edit(spec.read_text()))
    rc = main(["study", "run", str(spec), "--db", str(tmp_path / "s.db"), "--reader", "R1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_analyze_on_a_missing_db_is_a_clear_error(tmp_path, capsys):
    assert main(["study", "analyze", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "o")]) == 2
    assert "no such study database" in capsys.readouterr().err


def _answered(db, code):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT r.question_index FROM responses r JOIN sessions s ON r.session_id = s.id "
                           "JOIN readers d ON s.reader_id = d.id WHERE d.code = ?", [code]).fetchall()
    except sqlite3.OperationalError as exc:  # killed before the schema was committed: nothing to lose yet
        assert "no such table" in str(exc)
        return []
    finally:
        con.close()


@pytest.mark.slow
def test_killed_reader_sessions_lose_no_committed_answer_and_resume_exactly(tmp_path):
    """>= 20 SIGKILLs at random points of a scripted session (a subprocess)."""
    spec = write_phantom_study(tmp_path / "s", n_real=4, n_synthetic=4, trials=12, size=32)
    db = tmp_path / "kill.db"
    rnd = random.Random(1234)
    kills, reader, finished_sessions, mid_session = 0, 0, 0, 0
    t_start = time.monotonic()
    prev = 0  # answers of the current reader in the db before this run
    while kills < 20:
        code = f"R{reader}"
        p = subprocess.Popen([sys.executable, "-m", "ctstudio.cli", "study", "run", str(spec), "--db", str(db),
                              "--reader", code, "--delay-ms", "25", "--seed", str(kills), "--no-images"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=ENV)
        head = ""
        if rnd.random() < 0.2:  # some kills land during start-up (imports, schema, session creation)
            time.sleep(rnd.uniform(0.0, 1.0))
        else:  # most land while answers are being committed: wait for the first commit, then a bit
            head = p.stdout.readline()
            head += p.stdout.readline()
            time.sleep(rnd.uniform(0.0, 0.4))
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        lines = [json.loads(x) for x in (head + out).splitlines() if x.strip()]
        printed = [x["committed"] for x in lines if "committed" in x]
        in_db = sorted(q for (q,) in _answered(db, code))
        assert set(printed) <= set(in_db), (printed, in_db)  # every answer reported committed is in the db
        assert in_db == list(range(1, len(in_db) + 1))  # a prefix of the order: no gap, nothing lost
        assert len(in_db) - prev in (len(printed), len(printed) + 1)  # at most one committed but not yet printed
        started = [x for x in lines if x.get("event") in ("started", "resumed")]
        if started:  # it resumed exactly at the first unanswered trial
            assert started[0]["at_question"] == prev + 1
            assert printed == list(range(prev + 1, prev + 1 + len(printed)))
        if killed:
            kills += 1
            mid_session += bool(printed) or len(in_db) > prev
        else:
            assert p.returncode == 0, err
        prev = len(in_db)
        if prev == 12:
            finished_sessions += 1
            reader, prev = reader + 1, 0
    # resume check, precisely: one more run of a partly answered reader starts at the first unanswered
    n_before = len(_answered(db, f"R{reader}"))
    r = cli("study", "run", spec, "--db", db, "--reader", f"R{reader}", "--max", "1")
    first = json.loads(r.stdout.splitlines()[0])
    assert first["at_question"] == n_before + 1
    assert mid_session >= 8, mid_session  # kills really hit sessions while they were committing answers
    assert finished_sessions >= 1
    assert time.monotonic() - t_start < 90


def test_two_sites_named_run_merged_and_analyzed_by_site(tmp_path, capsys):
    spec = write_phantom_study(tmp_path / "study", trials=4)
    dbs = []
    for site, readers in (("HOSP-A", ("R1", "R2")), ("HOSP-B", ("R1",))):
        db = tmp_path / f"{site}.db"
        assert run_main(capsys, "study", "new", spec, "--db", db)[0] == 0
        rc, out, err = run_main(capsys, "study", "site", "--db", db, site)
        assert rc == 0 and f"site: {site}" in out, err
        for i, code in enumerate(readers):
            rc, out, err = run_main(capsys, "study", "run", spec, "--db", db, "--reader", code, "--policy", "oracle",
                                    "--accuracy", "0.8", "--seed", i, "--no-images")
            assert rc == 0, err
        dbs.append(db)
    merged = tmp_path / "all.db"
    rc, out, err = run_main(capsys, "study", "merge", "--out", merged, *dbs, "--json")
    assert rc == 0, err
    assert [(x["site"], x["readers"], x["answers"]) for x in json.loads(out)] == [("HOSP-A", 2, 8), ("HOSP-B", 1, 4)]
    rc, out, err = run_main(capsys, "study", "merge", "--out", merged, *dbs)  # again: nothing new
    assert rc == 0 and out.count("+0 answers") == 2, out
    rc, out, err = run_main(capsys, "study", "analyze", "--db", merged, "--out", tmp_path / "res")
    assert rc == 0, err
    assert "by site (2 sites" in out and "HOSP-A/R1" in out and "HOSP-B/R1" in out
    assert (tmp_path / "res" / "sites.csv").read_text().splitlines()[0].startswith("site,n_readers,n,correct")
    # a database of another spec is refused with one clear line
    other = write_phantom_study(tmp_path / "other", trials=3)
    odb = tmp_path / "other.db"
    run_main(capsys, "study", "new", other, "--db", odb)
    run_main(capsys, "study", "site", "--db", odb, "HOSP-C")
    rc, out, err = run_main(capsys, "study", "merge", "--out", merged, odb)
    assert rc != 0 and "different spec" in err


def test_audit_json_into_head_ends_without_a_traceback(tmp_path):
    spec = write_phantom_study(tmp_path / "s", n_real=6, n_synthetic=6)
    r = subprocess.run(f"{sys.executable} -m ctstudio.cli study audit {spec} --json | head -2", shell=True,
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert len(r.stdout.splitlines()) == 2
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
