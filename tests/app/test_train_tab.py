"""The Train tab drives real ``ctstudio train`` child processes: start, curves, preview, pause, stop, re-attach,
continue, SIGKILL and continue -- the losses after the kill equal an uninterrupted in-process run's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctstudio.pipelines import runs

@pytest.fixture
def data_dir(tmp_path):
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    d = tmp_path / "data"
    d.mkdir()
    write_volume(head_phantom(shape=(12, 32, 32), noise_sd=10.0, seed=0), d / "phantom.nii.gz")
    return d


def _steps(tab) -> tuple[list[int], list[float]]:
    return tab.loss_plot.series.get("loss", ([], []))


def _step_events(run: Path) -> list[dict]:
    return [e for e in runs.EventTail(run / "events.jsonl").read() if e["stage"] == "step"]


def _kill_leftover(run: Path | None) -> None:
    if run is not None:
        runs.send(run, "kill")


def test_train_tab_run_stop_reattach_continue_kill(qtbot, main_window, data_dir, tmp_path, one_torch_thread):
    from ctstudio.app.tabs.train import Tab
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.train import TrainRequest, train

    tab = main_window.tab("Train")
    assert isinstance(tab, Tab)
    tab.close_policy = "leave"
    tab.threads = 1
    tab.root_edit.setText(str(tmp_path / "runs"))
    tab.on_activated()  # (the window may have started the tab already: restore())
    qtbot.waitUntil(lambda: bool(tab.presets), timeout=120000)
    tab.kind_combo.setCurrentIndex(tab.kind_combo.findData("icnet"))
    tab.preset_combo.setCurrentText("tiny")
    tab.field_edits["steps"].setText("200")
    tab.field_edits["checkpoint_every"].setText("10")
    assert tab.field_edits["k"].isHidden() and not tab.field_edits["image_size"].isHidden()
    tab.data_edit.setText(str(data_dir))
    with qtbot.waitSignal(tab.scanned, timeout=60000) as got:
        tab.scan()
    assert got.args[0].ok and len(got.args[0].used) == 1
    assert tab.start_button.isEnabled()

    run = tab.start()
    try:
        assert run is not None and (run / "train.pid").exists()
        config = json.loads((run / "config.json").read_text())
        assert config == {"base": "tiny", "steps": 200}  # checkpoint_every 10 is the preset's own
        # curves: at least two loss points (steps 1 and 10), and the preview written at step 10
        qtbot.waitUntil(lambda: len(_steps(tab)[0]) >= 2, timeout=180000)
        qtbot.waitUntil(lambda: "preview at step" in tab.preview_caption.text(), timeout=60000)
        assert tab.preview_label.pixmap() is not None and not tab.preview_label.pixmap().isNull()
        assert "steps/s" in tab.stats_label.text() and "ETA" in tab.stats_label.text()

        # pause: the process is stopped (SIGSTOP) and logs nothing; resume
        tab.toggle_pause()
        qtbot.waitUntil(lambda: tab.proc_state == "paused", timeout=5000)
        assert tab.pause_button.text() == "Resume"
        n = len(_step_events(run))
        qtbot.wait(2500)
        assert len(_step_events(run)) == n
        tab.toggle_pause()
        qtbot.waitUntil(lambda: tab.proc_state == "running", timeout=5000)

        # stop: SIGTERM -> a checkpoint at the step reached, the run listed as stopped
        with qtbot.waitSignal(tab.run_ended, timeout=120000) as ended:
            tab.stop()
        assert ended.args[0] == "stopped"
        state = json.loads((run / "checkpoint" / "state.json").read_text())
        stopped_at = state["step"]
        assert 10 <= stopped_at < 200
        assert tab.run_states()[run.name] == "stopped"
        curve_before = list(_steps(tab)[0])

        # a new tab (a reopened window) re-attaches to the current run and redraws its curve from the start
        tab2 = Tab(main_window)
        qtbot.addWidget(tab2)
        tab2.close_policy = "leave"
        tab2.restore()
        assert tab2.run == run
        assert _steps(tab2)[0] == curve_before
        assert tab2.run_list.count() == 1 and "stopped" in tab2.run_list.item(0).text()

        # continue: the curve goes on after the checkpoint's step
        tab2.run_list.setCurrentRow(0)
        assert tab2.continue_run() == run
        qtbot.waitUntil(lambda: any(s > stopped_at for s in _steps(tab2)[0]), timeout=180000)
        steps = _steps(tab2)[0]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        # wait for a checkpoint after the stop, then SIGKILL the child (no checkpoint at exit)
        qtbot.waitUntil(lambda: (runs.run_status(run).checkpoint_step or 0) > stopped_at, timeout=180000)
        assert runs.process_state(run) == "running"
        with qtbot.waitSignal(tab2.run_ended, timeout=30000) as ended:
            runs.send(run, "kill")
        assert ended.args[0] == "killed"
        ckpt = json.loads((run / "checkpoint" / "state.json").read_text())["step"]
        assert tab2.run_states()[run.name] == "killed"

        # continue after the kill: points logged after the checkpoint are dropped, then the curve continues
        with qtbot.waitSignal(tab2.run_ended, timeout=300000) as ended:
            assert tab2.continue_run() == run
        assert ended.args[0] == "finished"
        steps, losses = _steps(tab2)
        assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[-1] == 200
        assert (run / f"{run.name}.safetensors").exists()  # the model is named after its run
    finally:
        _kill_leftover(run)

    # an uninterrupted run with the same config gives the same losses after the kill (bit-identical resume)
    ref = run_job(train(TrainRequest(kind="icnet", data=data_dir, out=tmp_path / "ref", config=str(run / "config.json"),
                                     device="cpu", threads=1)))
    assert ref.steps_done == 200
    ref_loss = {e["done"]: e["loss"] for e in runs.EventTail(tmp_path / "ref" / "events.jsonl").read()
                if e["stage"] == "step"}
    after = [(s, v) for s, v in zip(steps, losses) if s > ckpt and s in ref_loss]
    assert len(after) >= 2
    np.testing.assert_array_equal([v for _, v in after], [ref_loss[s] for s, _ in after])


def test_train_tab_config_file_and_bad_field(qtbot, main_window, tmp_path):
    """A config file's fields show in the form; a non-number in a field is refused before anything starts."""
    tab = main_window.tab("Train")
    tab.on_activated()  # (the window may have started the tab already: restore())
    qtbot.waitUntil(lambda: bool(tab.presets), timeout=120000)
    tab.kind_combo.setCurrentIndex(tab.kind_combo.findData("score"))
    cfg = tmp_path / "mine.json"
    cfg.write_text(json.dumps({"base": "tiny", "k": 3, "steps": 7}))
    tab.preset_combo.setCurrentText("file")
    tab.config_file_edit.setText(str(cfg))
    tab._fill_fields()
    assert tab.field_edits["k"].text() == "3" and tab.field_edits["steps"].text() == "7"
    tab.field_edits["lr"].setText("0.01")
    d = tab.config_dict()
    assert d["base"] == "tiny" and d["k"] == 3 and d["steps"] == 7 and d["lr"] == pytest.approx(0.01)
    tab.field_edits["batch_size"].setText("2.5")
    with pytest.raises(ValueError, match="batch_size"):
        tab.config_dict()


@pytest.mark.slow
def test_train_tab_runs_two_processes_pauses_them_all_and_stops(qtbot, main_window, data_dir, tmp_path):
    """processes = 2: the tab starts ctstudio train --processes 2 (torchrun, gloo); Pause stops torchrun and both
    workers (they sit in sessions of their own), Stop leaves a checkpoint at a step both ranks agreed on."""
    tab = main_window.tab("Train")
    tab.close_policy = "leave"
    tab.threads = 1
    tab.root_edit.setText(str(tmp_path / "runs"))
    tab.on_activated()
    qtbot.waitUntil(lambda: bool(tab.presets), timeout=120000)
    tab.kind_combo.setCurrentIndex(tab.kind_combo.findData("icnet"))
    tab.preset_combo.setCurrentText("tiny")
    tab.field_edits["steps"].setText("5000")
    tab.processes_spin.setValue(2)
    tab.data_edit.setText(str(data_dir))
    with qtbot.waitSignal(tab.scanned, timeout=60000):
        tab.scan()
    run = tab.start()
    try:
        assert run is not None
        assert json.loads((run / "run.json").read_text())["processes"] == 2
        assert json.loads((run / "train.pid").read_text())["argv"][-2:] == ["--processes", "2"]
        qtbot.waitUntil(lambda: len(_steps(tab)[0]) >= 1, timeout=180000)
        pid = json.loads((run / "train.pid").read_text())["pid"]
        workers = runs.descendants(pid)
        assert len(workers) >= 2  # torchrun's two workers (and whatever they start)
        tab.toggle_pause()
        qtbot.waitUntil(lambda: tab.proc_state == "paused", timeout=5000)
        family = [pid, *workers]
        # a stop takes effect when the process is next scheduled (on a busy CPU, a moment later)
        qtbot.waitUntil(lambda: all(runs._proc_stat(p) in ("T", "t", None) for p in family), timeout=10000)
        n = len(_step_events(run))
        qtbot.wait(2000)
        assert len(_step_events(run)) == n
        tab.toggle_pause()
        qtbot.waitUntil(lambda: tab.proc_state == "running", timeout=5000)
        with qtbot.waitSignal(tab.run_ended, timeout=180000) as ended:
            tab.stop()
        assert ended.args[0] == "stopped"
        done = [e for e in runs.EventTail(run / "events.jsonl").read() if e["stage"] == "done"]
        assert len(done) == 1 and done[0]["cancelled"] is True  # rank 0 alone logs
        assert json.loads((run / "checkpoint" / "state.json").read_text())["world_size"] == 2
        assert runs.run_status(run).resumable
    finally:
        _kill_leftover(run)


def test_register_model_lists_the_run_in_the_calibrate_tab(qtbot, main_window, tmp_path, monkeypatch, one_torch_thread):
    """Register model copies the finished run's model into the user folder; the Calibrate tab's panel lists it at
    once; a second registration asks before replacing it, and 'no' leaves the first one."""
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.train import TrainRequest, train

    monkeypatch.setenv("CTSTUDIO_MODELS", str(tmp_path / "models"))
    data = tmp_path / "phantom.nii.gz"
    write_volume(head_phantom(shape=(12, 32, 32), noise_sd=10.0, seed=0), data)
    run = tmp_path / "runs" / "icnet-mine"
    run_job(train(TrainRequest(kind="icnet", data=data, out=run, config="tiny", device="cpu", steps=2,
                               name="icnet-mine")))
    tab = main_window.tab("Train")
    tab.close_policy = "leave"
    tab.attach(run)
    qtbot.waitUntil(lambda: tab.register_button.isEnabled(), timeout=10000)
    calibrate = main_window.tab("Calibrate")
    assert "icnet-mine" not in [e.name for e in calibrate.models.entries]
    path = tab.register_model()
    assert path == tmp_path / "models" / "icnet-mine.safetensors" and path.is_file()
    assert "icnet-mine" in [e.name for e in calibrate.models.entries]
    before = path.with_suffix(".json").read_text()
    asked = []
    tab.confirm = lambda title, text: asked.append(text) or False
    assert tab.register_model() is None
    assert len(asked) == 1 and "icnet-mine" in asked[0]
    assert path.with_suffix(".json").read_text() == before
    tab.confirm = lambda title, text: True
    assert tab.register_model() == path
