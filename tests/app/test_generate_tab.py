"""The Generate tab end to end: a run streams into the views as one growing volume, cancel keeps what was made
and Continue equals an uninterrupted run, the result saves, compares and goes into a study pool, and the window
stays responsive and closes cleanly. References are the headless pipeline (ctstudio.pipelines.generate) run
directly, files re-read with ctstudio.io / pydicom, and the study audit."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt, QThreadPool, QTimer

from generate_helpers import save_tiny_score_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    save_tiny_score_model(d, "tiny-score")
    return d


@pytest.fixture
def sample_volume(sample_path):
    from ctstudio.io import read_volume

    return read_volume(sample_path)


@pytest.fixture
def gen(qtbot, main_window, models_dir, monkeypatch, sample_volume, sample_path):
    """The Generate tab of a window showing the sample, the tiny model selected, samplers listed."""
    monkeypatch.setenv("CTSTUDIO_MODELS", str(models_dir))
    mw = main_window
    mw.set_volume(sample_volume, "headsq_hu.nii.gz", str(sample_path))
    tab = mw.tab("Generate")
    tab.models.refresh()
    assert tab.models.select("tiny-score")
    mw.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: bool(tab.samplers), timeout=60000)
    tab.icnet_check.setChecked(False)
    tab.set_sampler("heun", 3)
    tab.seed_slice.setValue(20)
    tab.n_slices.setValue(4)
    return mw, tab


def _wait_run(qtbot, tab, timeout=120000):
    qtbot.waitUntil(lambda: not tab.running, timeout=timeout)


def _reference(req):
    """The same request run headless through the pipeline (what `ctstudio generate` writes)."""
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.generate import generate

    return run_job(generate(req))


def test_window_starts_without_torch_and_the_generate_tab_is_there():
    code = ("import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
            "from ctstudio.app.main_window import MainWindow, make_settings\n"
            "import tempfile; mw = MainWindow(make_settings(tempfile.mktemp(suffix='.ini')))\n"
            "mw.show(); mw.tabs.setCurrentWidget(mw.tab('Study'))\n"
            "import time; t = time.monotonic()\n"
            "while time.monotonic() - t < 3: app.processEvents()\n"  # shown: every tab's restore() and its workers
            "from ctstudio.app.workers import wait_for_workers; wait_for_workers(30000)\n"
            "i = [mw.tabs.tabText(k) for k in range(mw.tabs.count())].index('Generate')\n"
            "print('torch' in sys.modules, mw.tabs.isTabEnabled(i), type(mw.tab('Generate')).__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True", "ctstudio.app.tabs.generate"], out.stderr[-2000:]


def test_slices_stream_into_one_growing_volume_marked_and_equal_to_the_pipeline(qtbot, gen, sample_volume):
    mw, tab = gen
    assert "resampled 64x64 -> 16x16" in tab.grid_note.text(), "the grid note shows before the run"
    seen = []
    axial = tab.view.views["axial"]
    viewer_coronal = mw.tab("Viewer").views["coronal"]
    tab.slice_shown.connect(lambda row: seen.append((row, mw.volume.shape, axial.image_data.copy(),
                                                     viewer_coronal.image_data.copy())))
    tab.start()
    _wait_run(qtbot, tab)
    assert len(seen) == 4
    # the seed side (slices 20..92, resampled to 16x16) then one slice more per event, prepended (index 19, 18..)
    assert [s[1] for s in seen] == [(73 + n, 16, 16) for n in range(1, 5)]
    for (row, _, img, vimg), (_, _, prev, vprev) in zip(seen[1:], seen[:-1]):
        assert not np.array_equal(img, prev) and not np.array_equal(vimg, vprev), "the views did not change"
    ref = _reference(tab.request)
    got = tab.generated_volume()
    assert np.array_equal(got.array, ref.array)
    assert np.allclose(got.origin, ref.origin) and np.allclose(got.spacing, ref.spacing)
    vol = mw.volume
    assert np.array_equal(vol.array[:4], ref.array), "generated slices sit below the seed side"
    # patient positions stay right: the seed slice keeps its z, the generated ones are below it
    assert np.isclose(vol.index_to_lps(4, 0, 0)[2], sample_volume.index_to_lps(20, 0, 0)[2])
    assert np.isclose(vol.index_to_lps(0, 0, 0)[2], sample_volume.index_to_lps(16, 0, 0)[2])
    assert vol.provenance.synthetic
    for view in (tab.view.views["coronal"], mw.tab("Viewer").views["sagittal"]):
        assert view.marked_range()[:3] == (0, 3, "GENERATED (tiny-score)")
    text = tab.provenance_view.toPlainText()
    assert "tiny-score" in text and "heun, 3 steps" in text and "random seed 0" in text and "IC-Net: off" in text
    assert "4 slices after seed slice 20" in text


def test_cancel_keeps_slices_and_continue_equals_an_uninterrupted_run(qtbot, gen):
    mw, tab = gen
    tab.set_sampler("heun", 6)
    worker = tab.start()

    def stop_after_two(ev):  # in the worker thread: the cancel lands before the third slice starts
        if ev.get("stage") == "slice" and ev["done"] == 2:
            worker.quit()
    worker.yielded.connect(stop_after_two, Qt.ConnectionType.DirectConnection)
    outcome = []
    tab.run_finished.connect(outcome.append)
    _wait_run(qtbot, tab)
    assert outcome == ["cancelled"] and tab.grow.n_generated == 2 and mw.volume.shape[0] == 75
    assert tab.continue_button.isEnabled() and tab.save_nifti_button.isEnabled()
    tab.n_slices.setValue(2)
    tab.continue_run()
    _wait_run(qtbot, tab)
    assert outcome == ["cancelled", "done"] and mw.volume.shape[0] == 77
    import dataclasses

    ref = _reference(dataclasses.replace(tab.request, n_slices=4))
    assert np.array_equal(tab.generated_volume().array, ref.array)
    assert tab.provenance.parameters["n_slices"] == 4 and tab.provenance.parameters["parts"] == 2


def test_save_nifti_and_dicom_reread_equal_synthetic_and_never_overwrite(qtbot, gen, tmp_path, sample_path):
    import json

    import pydicom

    from ctstudio.io import read_volume

    mw, tab = gen
    tab.start()
    _wait_run(qtbot, tab)
    vol = tab.generated_volume()
    saved = []
    mw.saved.connect(saved.append)
    out = tmp_path / "gen.nii.gz"
    w = tab.save(out, "nifti")
    qtbot.waitUntil(lambda: out.exists() and not w.is_running, timeout=30000)
    back = read_volume(out)
    assert np.array_equal(back.array, vol.array) and np.allclose(back.origin, vol.origin)
    qtbot.waitUntil(lambda: (tmp_path / "gen.provenance.json").exists(), timeout=5000)
    side = json.loads((tmp_path / "gen.provenance.json").read_text())
    assert side["synthetic"] and side["provenance"]["model"] == "tiny-score" and side["file"] == "gen.nii.gz"
    folder = tmp_path / "gen_dicom"
    w = tab.save(folder, "dicom")
    qtbot.waitUntil(lambda: folder.is_dir() and not w.is_running, timeout=30000)
    back = read_volume(folder)
    assert np.array_equal(back.array, vol.array)
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    assert ds.SyntheticData == "YES" and list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    # an existing file: asked first; "no" leaves it untouched
    before = out.read_bytes()
    asked = []
    tab.confirm_overwrite = lambda p: asked.append(p) or False
    assert tab.save(out, "nifti") is None and asked == [out] and out.read_bytes() == before
    # never onto the seed file, not even when confirmed
    tab.confirm_overwrite = lambda p: True
    assert tab.save(sample_path, "nifti") is None
    assert "input" in mw.error_box.text()


def test_add_to_study_pool_then_the_audit_passes(qtbot, gen, tmp_path):
    import json

    from ctstudio.studies.audit import audit_spec, case_features
    from ctstudio.studies.demo import make_demo
    from ctstudio.studies.spec import load_spec, resolve_pools

    mw, tab = gen
    tab.start()
    _wait_run(qtbot, tab)
    study = tmp_path / "study"
    specs = make_demo(study)
    spec = [s for s in specs if "pair" in s.name][0]
    n_before = sum(c.cls == "synthetic" for c in resolve_pools(load_spec(spec)))
    out = tab.add_to_pool(study)
    assert out.parent == study / "cases" / "synthetic" and out.name.startswith("case_")
    side = json.loads(out.with_name(out.name.replace(".nii.gz", ".provenance.json")).read_text())
    assert side["provenance"]["model"] == "tiny-score" and side["shape_zyx"] == [4, 16, 16]
    cases = resolve_pools(load_spec(spec))
    assert sum(c.cls == "synthetic" for c in cases) == n_before + 1
    rep = audit_spec(load_spec(spec))
    assert rep["n_synthetic"] == n_before + 1
    assert not [f for f in rep["findings"] if f["feature"] == "model_in_provenance"], "the model name leaks"
    feats = case_features(str(out))  # the demo's own files carry class words on purpose; ours must not
    assert feats["class_word_in_name"] == "" and feats["model_in_provenance"] == ""
    assert not any("SYNTHETIC" in str(v).upper() for k, v in feats.items() if k.startswith(("meta:", "header:")))
    cli = subprocess.run([sys.executable, "-m", "ctstudio.cli", "study", "audit", str(spec)], capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert f"{n_before + 1} synthetic" in cli.stdout


def test_all_air_run_grows_from_nothing(qtbot, gen):
    mw, tab = gen
    tab.seed_air_radio.setChecked(True)
    assert tab.grid_note.text() == ""
    tab.n_slices.setValue(3)
    tab.start()
    _wait_run(qtbot, tab)
    vol = mw.volume
    assert vol.shape == (3, 16, 16) and tab.grow.generated_range == (0, 2)
    ref = _reference(tab.request)
    assert np.array_equal(vol.array, ref.array) and np.allclose(vol.origin, ref.origin)


def test_opening_another_volume_and_switching_tabs_mid_run_is_safe(qtbot, gen):
    from ctstudio.imaging import phantom as ph

    mw, tab = gen
    tab.set_sampler("heun", 8)
    tab.n_slices.setValue(5)
    tab.start()
    qtbot.waitUntil(lambda: tab.grow.n_generated >= 1, timeout=60000)
    mw.tabs.setCurrentWidget(mw.tab("Study"))
    other = ph.head_phantom(shape=(20, 32, 32))
    mw.set_volume(other, "phantom")
    mw.tabs.setCurrentWidget(mw.tab("Viewer"))
    _wait_run(qtbot, tab)
    assert mw.volume is other, "the run must not take the viewer back from the volume the user opened"
    assert tab.grow.n_generated == 5 and tab.view.volume.shape[0] == 73 + 5
    assert tab.user_volume is other
    tab.show_in_viewer()
    assert mw.volume.shape == (78, 16, 16)


def test_an_error_mid_run_shows_the_message_and_keeps_the_slices(qtbot, gen, monkeypatch):
    import ctstudio.pipelines.generate as pg
    from ctstudio.errors import ModelError

    real = pg.generate

    def failing(req, cancel=None):
        n = 0
        for ev in real(req, cancel=cancel):
            yield ev
            n += ev.get("stage") == "slice"
            if n == 2:
                raise ModelError("the network returned NaN", hint="test")
    monkeypatch.setattr(pg, "generate", failing)
    mw, tab = gen
    outcome = []
    tab.run_finished.connect(outcome.append)
    tab.start()
    _wait_run(qtbot, tab)
    assert outcome == ["error"] and tab.grow.n_generated == 2
    assert "NaN" in mw.error_box.text() and "kept" in tab.progress_label.text()
    assert tab.save_nifti_button.isEnabled() and tab.continue_button.isEnabled()


def test_event_loop_keeps_turning_during_generation(qtbot, gen):
    mw, tab = gen
    tab.set_sampler("heun", 10)
    tab.n_slices.setValue(6)
    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t0 = time.perf_counter()
    tab.start()
    _wait_run(qtbot, tab)
    timer.stop()
    span = time.perf_counter() - t0
    gaps = np.diff(ticks) * 1000
    assert len(ticks) >= 0.4 * span / 0.020, f"{len(ticks)} ticks in {span:.2f} s"
    assert np.percentile(gaps, 95) < 100, f"p95 gap {np.percentile(gaps, 95):.0f} ms"


def test_closing_the_window_mid_run_stops_it(qtbot, settings, models_dir, monkeypatch, sample_volume):
    from ctstudio.app.main_window import MainWindow

    monkeypatch.setenv("CTSTUDIO_MODELS", str(models_dir))
    mw = MainWindow(settings)
    qtbot.addWidget(mw)
    mw.show()
    mw.set_volume(sample_volume, "headsq")
    tab = mw.tab("Generate")
    tab.models.refresh()
    tab.models.select("tiny-score")
    mw.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: bool(tab.samplers), timeout=60000)
    tab.icnet_check.setChecked(False)
    tab.set_sampler("heun", 50)
    tab.n_slices.setValue(500)
    tab.start()
    qtbot.waitUntil(lambda: tab.grow.n_generated >= 1, timeout=60000)
    t0 = time.perf_counter()
    mw.close()
    assert QThreadPool.globalInstance().waitForDone(5000)
    assert time.perf_counter() - t0 < 10 and tab.grow.n_generated < 500


def test_bundled_demo_continues_the_sample_and_compares_with_the_real_slices(qtbot, gen):
    mw, tab = gen
    assert tab.models.select("score-k2-demo")
    tab._fill_icnet()
    tab.icnet_check.setChecked(True)
    assert tab.grid_note.text() == "", "the sample is on the demo's 64x64 grid"
    loaded = []
    tab.models.model_loaded.connect(loaded.append)
    tab.models.load_selected()
    qtbot.waitUntil(lambda: bool(loaded), timeout=60000)
    assert tab.condition_combo.isEnabled() and tab.condition_combo.currentData() == "clean"
    tab.set_sampler("heun", 4)
    tab.n_slices.setValue(3)
    tab.start()
    _wait_run(qtbot, tab, timeout=300000)
    assert mw.volume.shape == (76, 64, 64)
    text = tab.provenance_view.toPlainText()
    assert "score-k2-demo" in text and "IC-Net: icnet-demo" in text and "condition clean" in text
    ref = _reference(tab.request)
    assert np.array_equal(tab.generated_volume().array, ref.array)
    assert tab.compare_button.isEnabled()
    current = mw.volume
    assert tab.compare_with_real()
    assert mw.volume is current  # comparing does not change the window's current volume
    viewer = mw.tab("Viewer")
    assert viewer.in_compare and mw.tabs.currentWidget() is viewer
    a, b = viewer.compare.volume_a, viewer.compare.volume_b
    assert np.array_equal(a.array, tab.request.seed_volume.array[17:20]) and np.array_equal(b.array, ref.array)


def test_before_a_run_the_tab_shows_the_seed_volume_and_nothing_for_an_all_air_start(gen, sample_volume):
    mw, tab = gen
    assert tab.view.volume is sample_volume  # what the run will continue, before Generate is pressed
    tab.seed_air_radio.setChecked(True)
    assert tab.view.volume is None
    tab.seed_volume_radio.setChecked(True)
    assert tab.view.volume is sample_volume
