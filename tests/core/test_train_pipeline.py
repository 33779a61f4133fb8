"""The training job (pipelines/train.py): one event schema, a run summary, cancel within a step, OUT/events.jsonl,
no run overwritten without being asked, config files that name their preset, cards built from the run."""

import json

import numpy as np
import pytest
import torch

from ctstudio.errors import ConfigError, InputError
from ctstudio.jobs import CancelToken, run_job, validate_event
from ctstudio.pipelines.train import TrainRequest, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_file(phantom_file):
    return phantom_file


def _req(data_file, out, **kw):
    kw.setdefault("steps", 4)
    return TrainRequest(kind="icnet", data=data_file, out=out, config="tiny", device="cpu", log_every=1, **kw)


def test_every_event_follows_the_schema_and_the_summary_says_what_was_done(tmp_path, data_file):
    events = []
    summary = run_job(train(_req(data_file, tmp_path / "run", checkpoint_every=2)), events.append)
    for ev in events:
        validate_event(ev)
        assert ev["job"] == "train" and ev["unit"] == "step" and ev["total"] == 4
    stages = [e["stage"] for e in events]
    assert stages[0] == "start" and stages[-1] == "done"
    assert [e["done"] for e in events if e["stage"] == "step"] == [1, 2, 3, 4]
    assert [e["done"] for e in events if e["stage"] == "checkpoint"] == [2, 4]
    assert summary.model_path.is_file() and summary.model_path == tmp_path / "run" / "icnet-tiny.safetensors"
    assert summary.steps_done == 4 and summary.max_steps == 4 and summary.cancelled is False
    assert summary.checkpoint == tmp_path / "run" / "checkpoint" / "state.safetensors"
    assert 0 < summary.train_wall_s <= summary.wall_s and summary.device == "cpu"
    logged = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["done"]) for e in logged] == [(e["stage"], e["done"]) for e in events]


@pytest.mark.parametrize("at", [1, 3])
def test_a_cancel_from_the_callback_stops_within_one_step_with_a_checkpoint(tmp_path, data_file, at):
    token = CancelToken()
    events = []

    def on_event(ev):
        events.append(ev)
        if ev["stage"] == "step" and ev["done"] == at:
            token.cancel("test")

    summary = run_job(train(_req(data_file, tmp_path, steps=50, checkpoint_every=0), cancel=token), on_event)
    assert summary.cancelled and summary.model_path is None
    assert summary.steps_done in (at, at + 1)
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == summary.steps_done
    assert events[-1]["stage"] == "done" and events[-1]["cancelled"] is True and events[-1]["reason"] == "test"
    assert not list(tmp_path.glob("*.safetensors"))


def test_resume_after_a_cancel_equals_the_uninterrupted_run_and_appends_to_the_log(tmp_path, data_file):
    from ctstudio import checkpoints

    straight = run_job(train(_req(data_file, tmp_path / "a", steps=6)))
    token = CancelToken()
    cut = run_job(train(_req(data_file, tmp_path / "b", steps=6), cancel=token),
                  lambda ev: token.cancel() if ev["stage"] == "step" and ev["done"] == 2 else None)
    assert cut.cancelled and cut.steps_done == 2
    resumed = run_job(train(_req(data_file, tmp_path / "b", steps=6, resume=True)))
    assert resumed.steps_done == 6 and not resumed.cancelled
    a, b = checkpoints.load_tensors(straight.model_path), checkpoints.load_tensors(resumed.model_path)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "b" / "events.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log].count("start") == 2 and log[-1]["done"] == 6
    card = checkpoints.read_meta(resumed.model_path)["card"]
    assert card["steps"] == 6 and card["train_wall_s"] >= round(resumed.train_wall_s - resumed.wall_s, 1)


def test_an_existing_run_is_refused_naming_resume_and_overwrite(tmp_path, data_file):
    run_job(train(_req(data_file, tmp_path, steps=2)))
    model = tmp_path / "icnet-tiny.safetensors"
    before = model.read_bytes()
    with pytest.raises(InputError) as err:
        run_job(train(_req(data_file, tmp_path, steps=3)))
    assert "--resume" in str(err.value) and "--overwrite" in str(err.value)
    assert model.read_bytes() == before
    with pytest.raises(InputError, match="contradict"):
        run_job(train(_req(data_file, tmp_path, steps=3, resume=True, overwrite=True)))
    summary = run_job(train(_req(data_file, tmp_path, steps=3, overwrite=True)))
    assert summary.steps_done == 3 and model.read_bytes() != before
    log = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log].count("start") == 1  # the old run's log went with it


def test_resume_needs_a_checkpoint(tmp_path, data_file):
    with pytest.raises(InputError, match="no run to resume"):
        run_job(train(_req(data_file, tmp_path / "new", resume=True)))


def test_a_config_file_must_name_its_base_preset(tmp_path, data_file):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"steps": 3000}))
    with pytest.raises(ConfigError) as err:
        run_job(train(TrainRequest(kind="icnet", data=data_file, out=tmp_path / "o", config=str(cfg))))
    msg = str(err.value)
    assert "base" in msg and all(f"'{p}'" in msg for p in ("tiny", "demo", "paper"))
    cfg.write_text(json.dumps({"base": "huge"}))
    with pytest.raises(ConfigError, match="tiny, demo, paper"):
        run_job(train(TrainRequest(kind="icnet", data=data_file, out=tmp_path / "o", config=str(cfg))))


def test_the_card_is_built_from_the_run(tmp_path, data_file):
    from ctstudio import checkpoints
    from ctstudio.io import read_volume

    summary = run_job(train(_req(data_file, tmp_path, steps=3)))
    card = checkpoints.read_meta(summary.model_path)["card"]
    vol = read_volume(data_file)
    assert card["steps"] == 3 and card["steps_planned"] == 3  # --steps 3 although the tiny config says 20
    assert checkpoints.read_meta(summary.model_path)["config"]["training"]["steps"] == 20
    (f,) = card["data"]["files"]
    assert f["file"] == str(data_file) and f["shape_zyx"] == [12, 32, 32]
    assert f["spacing_xyz_mm"] == pytest.approx(list(vol.spacing))
    assert card["pixel_spacing_xyz_mm"] == [pytest.approx(list(vol.spacing))]
    assert card["machine"]["device"] == "cpu" and card["machine"]["torch"] == torch.__version__
    assert card["train_wall_s"] > 0 and card["seed"] == 0


@pytest.mark.slow
def test_a_kernel_model_card_names_its_own_data_and_no_template_text(tmp_path):
    """A GGCL model trained on the user's two-kernel data: the card describes that data, not a bundled model."""
    from ctstudio import checkpoints
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    data = tmp_path / "kernels"
    data.mkdir()
    for k, seed in (("UB", 0), ("YA", 1)):
        write_volume(head_phantom(shape=(10, 32, 32), noise_sd=20.0, seed=seed), data / f"chest_{k}.nii.gz")
    summary = run_job(train(TrainRequest(kind="ggcl", data=data, out=tmp_path / "out", config="tiny", steps=3,
                                         device="cpu", checkpoint_every=0)))
    card = checkpoints.read_meta(summary.model_path)["card"]
    text = json.dumps(card).lower()
    assert "demo" not in text and "phantom" not in text
    assert card["steps"] == 3
    assert sorted((f["file"].rsplit("/", 1)[-1], f["domain"]) for f in card["data"]["files"]) == [
        ("chest_UB.nii.gz", "UB"), ("chest_YA.nii.gz", "YA")]
    assert all(f["shape_zyx"] == [10, 32, 32] for f in card["data"]["files"])


def test_trainer_autocast_runs_the_forward_pass_in_bf16(tmp_path, data_file):
    """--autocast bf16: the network's convolutions run in bf16, the recipe gets float32 back, training works."""
    from ctstudio.training.recipes import build_recipe
    from ctstudio.training.trainer import Trainer

    recipe = build_recipe("icnet", "tiny", data_file)
    seen = []
    conv = next(m for m in recipe.net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    events = []
    t = Trainer(recipe, out_dir=tmp_path, max_steps=2, checkpoint_every=0, callback=events.append,
                data_dir=data_file, log_every=1, autocast="bf16")
    t.run()
    assert events[0]["autocast"] == "bf16"
    assert seen[0] == torch.bfloat16 and seen.count(torch.bfloat16) >= 2  # each training step's forward pass
    assert all(np.isfinite(e["loss"]) for e in events if e["stage"] == "step")
    out = t.nets["net"](torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    assert out.dtype == torch.float32
    with pytest.raises(ConfigError, match="autocast"):
        Trainer(recipe, out_dir=tmp_path, max_steps=1, autocast="fp8").run()


def test_the_score_model_has_no_precision_switch_of_its_own():
    from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig

    assert not hasattr(ScoreModel(ScoreUNetConfig.tiny()), "autocast_bf16")


def test_printers_and_parse_line_speak_the_one_schema():
    import io

    from ctstudio.jobs import Progress
    from ctstudio.training.events import JsonlPrinter, TextPrinter, parse_line

    ev = Progress("train", total=10, unit="step").event("step", 3, loss=float("nan"), lr=1e-3, steps_per_s=2.0)
    buf = io.StringIO()
    JsonlPrinter(buf)(ev)
    back = parse_line(buf.getvalue())
    assert back["stage"] == "step" and back["done"] == 3 and back["total"] == 10 and back["loss"] is None
    assert parse_line('{"event": "step", "step": 3}') is None  # the old shape is not an event any more
    assert parse_line("Traceback (most recent call last):") is None
    text = io.StringIO()
    TextPrinter(text)({**ev, "loss": 0.25})
    assert text.getvalue().startswith("step 3/10  loss 0.25")
