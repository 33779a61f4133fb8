"""The reader session state machine and the one display pipeline (no Qt)."""

import time

import numpy as np
import pytest

from ctstudio.errors import InputError, NotAnImageError
from ctstudio.imaging.phantom import head_phantom
from ctstudio.io import write_volume
from ctstudio.studies.fixtures import write_phantom_study, write_png
from ctstudio.studies.images import GREY_NOTE, load_case, prepare, window_of
from ctstudio.studies.session import FINISHED, PAUSED, TRIAL, TUTORIAL, ReaderSession
from ctstudio.studies.spec import DisplaySpec, load_spec
from ctstudio.studies.store import Store


@pytest.fixture
def pair_spec(tmp_path):
    return load_spec(write_phantom_study(tmp_path / "p", n_real=3, n_synthetic=3, trials=5))


def test_a_session_runs_tutorial_trials_end(pair_spec, tmp_path):
    st = Store(tmp_path / "s.db")
    s = ReaderSession.open(st, pair_spec, "r1", {"radiologist": True, "years_experience": 4})
    assert s.state == TUTORIAL and s.progress_text() == "pair 1 of 5"
    s.begin()
    assert s.state == TRIAL
    left, right = s.images()
    assert left.planes.shape == right.planes.shape == (1, 64, 64)
    for k in range(5):
        assert s.progress_text() == f"pair {k + 1} of 5"
        s.answer(choice="right")
    assert s.state == FINISHED and s.current is None
    with pytest.raises(InputError, match="finished"):
        s.answer(choice="left")
    rows = st.responses_table()
    assert [r["question_index"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["correct"] == int(r["real_side"] == "right") for r in rows)
    assert st.db["sessions"].get(s.session_id)["state"] == "finished"
    s.close()


def test_resume_continues_the_same_order_at_the_first_unanswered_trial(pair_spec, tmp_path):
    st = Store(tmp_path / "s.db")
    s = ReaderSession.open(st, pair_spec, "r1", prefetch=False)
    order = [(t["left_token"], t["right_token"]) for t in s.trials]
    s.begin()
    s.answer(choice="left")
    s.answer(choice="left")
    del s
    st2 = Store(tmp_path / "s.db")  # a new process would do exactly this
    s2 = ReaderSession.open(st2, pair_spec, "r1", prefetch=False)
    assert s2.resumed and s2.position == 3
    assert [(t["left_token"], t["right_token"]) for t in s2.trials] == order
    # another reader gets another order
    other = ReaderSession.open(st2, pair_spec, "r2", prefetch=False)
    assert [(t["left_token"], t["right_token"]) for t in other.trials] != order


def test_pause_is_not_counted_in_the_response_time(pair_spec, tmp_path):
    st = Store(tmp_path / "s.db")
    s = ReaderSession.open(st, pair_spec, "r1", prefetch=False)
    s.begin()
    s.pause()
    assert s.state == PAUSED
    with pytest.raises(InputError, match="paused"):
        s.answer(choice="left")
    time.sleep(0.3)
    s.resume()
    s.answer(choice="left")
    rt = st.responses_table()[0]["response_ms"]
    assert rt < 250, rt
    kinds = [e["kind"] for e in st.events(s.session_id)]
    assert "session_paused" in kinds and "session_unpaused" in kinds


def test_continuity_needs_every_structure_scored(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path / "c", kind="continuity", trials=4, mode="volume"))
    st = Store(tmp_path / "s.db")
    s = ReaderSession.open(st, spec, "r1", prefetch=False)
    s.begin()
    (img,) = s.images()
    assert img.planes.shape == (8, 64, 64)  # display depth 8
    partial = {k: 3 for k in spec.structures[:-1]}
    with pytest.raises(InputError, match="missing: nerve tracts"):
        s.answer(scores=partial)
    with pytest.raises(InputError, match="integers 1..3"):
        s.answer(scores={k: 4 for k in spec.structures})
    s.answer(scores={k: 2 for k in spec.structures}, comment="ok")
    assert st.responses_table()[0]["comment"] == "ok"
    assert sorted(t["cls"] for t in s.trials) == ["real", "real", "synthetic", "synthetic"]


def test_prefetch_prepares_the_next_trial_before_it_is_asked_for(pair_spec, tmp_path):
    st = Store(tmp_path / "s.db")
    s = ReaderSession.open(st, pair_spec, "r1", prefetch=True)
    s.begin()
    nxt = s.trials[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with s._lock:
            pending = [s._futures.get(t) for t in (nxt["left_token"], nxt["right_token"])]
            cached = [t in s._cache for t in (nxt["left_token"], nxt["right_token"])]
        if all(c or (f is not None and f.done()) for c, f in zip(cached, pending)):
            break
        time.sleep(0.02)
    else:
        pytest.fail("the next trial was not prefetched")
    s.images()
    s.answer(choice="left")
    prepared = []
    real_prepare = s._prepare_guarded
    s._prepare_guarded = lambda token: (prepared.append(token), real_prepare(token))[1]
    shown = s.images()
    assert len(shown) == 2 and prepared == []  # both images came prepared: nothing was loaded on demand
    s.close()


def test_one_display_pipeline_for_every_source(tmp_path):
    """Different sizes, spacings and formats (NIfTI, PNG 8/16-bit) all reach the screen alike."""
    disp = DisplaySpec(mode="axial", window=(0.0, 255.0), window_name="grey", size=96)
    a = head_phantom((6, 40, 40), spacing=(1.0, 1.0, 2.0))
    b = head_phantom((10, 64, 50), spacing=(0.7, 0.9, 1.0))
    write_volume(a, tmp_path / "a.nii.gz")
    write_volume(b, tmp_path / "b.nii.gz")
    write_png(tmp_path / "c.png")
    write_png(tmp_path / "d.png", shape=(90, 30), bits=16)
    outs = [prepare(load_case(tmp_path / n), disp) for n in ("a.nii.gz", "b.nii.gz", "c.png", "d.png")]
    for o in outs:
        assert o.planes.dtype == np.float32 and o.planes.shape == (1, 96, 96)
        r = o.render(window_of(disp))
        assert r.dtype == np.uint8 and r.shape == (1, 96, 96)
    # the physical aspect is kept: a 90x30 image fills 96 rows but only about 32 columns
    tall = outs[3].planes[0]
    filled_cols = np.count_nonzero((tall != 0.0).any(axis=0))
    assert 28 <= filled_cols <= 36
    png = load_case(tmp_path / "c.png")
    assert png.shape == (1, 40, 60) and GREY_NOTE in png.provenance.steps


def test_three_planes_and_a_broken_image(tmp_path):
    disp = DisplaySpec(mode="three_planes", size=32)
    write_volume(head_phantom((8, 20, 24)), tmp_path / "a.nii.gz")
    assert prepare(load_case(tmp_path / "a.nii.gz"), disp).planes.shape == (3, 32, 32)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(NotAnImageError, match="bad.png"):
        load_case(tmp_path / "bad.png")
