"""The one trainer loop: loss goes down, exact resume, cancel, events, the final model file."""

import json

import numpy as np
import pytest
import torch

from ctstudio.errors import Cancelled
from ctstudio.jobs import validate_event
from ctstudio.training.recipes import build_recipe
from ctstudio.training.trainer import Trainer


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_file(phantom_file):
    return phantom_file


def _trainer(kind, data_file, out, steps, **kw):
    torch.manual_seed(0)  # the same initial weights for every run
    recipe = build_recipe(kind, "tiny", data_file)
    events = []
    t = Trainer(recipe, out_dir=out, max_steps=steps, checkpoint_every=kw.pop("checkpoint_every", 3),
                seed=0, callback=events.append, data_dir=data_file, log_every=1, **kw)
    return t, events


def _losses(events):
    return {e["done"]: e["loss"] for e in events if e["stage"] == "step"}


@pytest.mark.parametrize("kind", [pytest.param("score", marks=pytest.mark.slow), "icnet"])
def test_training_steps_lower_the_loss_on_a_fixed_batch(kind, data_file):
    torch.manual_seed(0)
    recipe = build_recipe(kind, "tiny", data_file)
    batch = next(iter(recipe.make_batches(data_file, np.random.default_rng(0))))
    if kind == "icnet":  # IC-Net starts as the identity, already near the optimum on a small drift: move it off
        torch.nn.init.normal_(recipe.net.conv_out.weight, std=0.02)
    losses = []
    for step in range(12):
        torch.manual_seed(123)  # the same noise levels and noise every step: one fixed objective
        losses.append(recipe.train_step(batch, step)["loss"])
    assert losses[-1] < 0.9 * losses[0], losses
    assert min(losses[-3:]) < min(losses[:3]), losses


def test_conditional_lognormal_score_training_lowers_the_loss(data_file, tmp_path):
    """The demo's objective (prior slices clean in 80% of stacks, log-normal noise levels) trains too."""
    cfg = tmp_path / "cond.json"
    cfg.write_text(json.dumps({"base": "tiny", "cond_prob": 0.8, "t_sampling": "lognormal"}))
    torch.manual_seed(0)
    recipe = build_recipe("score", str(cfg), data_file)
    assert recipe.config.cond_prob == 0.8
    batch = next(iter(recipe.make_batches(data_file, np.random.default_rng(0))))
    losses = []
    for step in range(12):
        torch.manual_seed(123)
        losses.append(recipe.train_step(batch, step)["loss"])
    assert losses[-1] < 0.9 * losses[0], losses


def test_resume_gives_the_same_next_loss_as_an_uninterrupted_run(tmp_path, data_file):
    full, ev_full = _trainer("score", data_file, tmp_path / "a", 6)
    full.run()
    part, _ = _trainer("score", data_file, tmp_path / "b", 3)
    part.run()
    resumed, ev_res = _trainer("score", data_file, tmp_path / "b", 6)
    resumed.run(resume=True)
    lf, lr = _losses(ev_full), _losses(ev_res)
    assert sorted(lr) == [4, 5, 6]
    for s in (4, 5, 6):
        assert lr[s] == lf[s], (s, lr[s], lf[s])  # bit-identical


def test_cancel_stops_within_one_step_and_leaves_a_checkpoint(tmp_path, data_file):
    state = {"n": 0}

    def cancel():
        return state["n"] >= 2

    t, events = _trainer("icnet", data_file, tmp_path, 50, checkpoint_every=0)
    t.callback = lambda ev: (events.append(ev), state.__setitem__("n", ev["done"]))
    t.cancel = cancel
    with pytest.raises(Cancelled):
        t.run()
    assert t.step == 2
    assert events[-1]["stage"] == "done" and events[-1]["cancelled"] is True
    meta = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert meta["step"] == 2


def test_events_and_final_model_with_ema_weights(tmp_path, data_file):
    from ctstudio import checkpoints

    t, events = _trainer("icnet", data_file, tmp_path, 4)
    path = t.run()
    stages = [e["stage"] for e in events]
    assert stages[0] == "start" and stages[-1] == "done" and "checkpoint" in stages and "eval" in stages
    for ev in events:
        validate_event(ev)
        assert ev["job"] == "train" and ev["unit"] == "step" and ev["total"] == 4
    steps = [e for e in events if e["stage"] == "step"]
    assert [e["done"] for e in steps] == [1, 2, 3, 4]
    assert {"loss", "losses", "lr", "steps_per_s"} <= set(steps[0])
    assert steps[0]["eta"] is not None and steps[-1]["eta"] == 0.0
    assert events[-1]["path"] == str(path) and events[-1]["cancelled"] is False
    meta, tensors = checkpoints.load_model(path, kind="icnet")
    assert meta["card"]["steps"] == 4 and "eval_mae_hu_after" in meta["card"]
    ema = t.ema["net"].shadow.state_dict()
    for k, v in ema.items():
        assert torch.equal(tensors[f"net.{k}"], v)
    assert any(not torch.equal(tensors[f"net.{k}"], v.cpu()) for k, v in t.recipe.net.state_dict().items())


def test_unknown_kind_and_bad_config_are_clear_errors(tmp_path):
    from ctstudio.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model kind"):
        build_recipe("nope", "tiny")
    bad = tmp_path / "c.json"
    bad.write_text('{"base": "tiny", "lerning_rate": 1}')
    with pytest.raises(ConfigError, match="lerning_rate"):
        build_recipe("score", str(bad))


def _reference_index_stream(n, batch_size, rng, count):
    """Shuffled epochs written out: one permutation per epoch, cut into batches (top-up past the end)."""
    out = []
    while len(out) < count:
        perm = rng.permutation(n)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            chunk = perm[i:i + batch_size]
            if len(chunk) < batch_size:
                chunk = np.concatenate([chunk, rng.integers(0, n, batch_size - len(chunk))])
            out.append(chunk)
    return out[:count]


@pytest.mark.parametrize("n, batch, cut", [(10, 3, 2), (10, 3, 3), (9, 3, 3), (2, 4, 1)])
def test_shuffled_batches_continue_from_saved_json_state(n, batch, cut):
    """Stop after ``cut`` batches (mid-epoch or at an epoch's end), save the state as JSON, restore it into a
    fresh sampler and generator: the rest of the stream is the uninterrupted one."""
    from ctstudio.training.datasets import ShuffledBatches, bit_generator_from_state

    ref = _reference_index_stream(n, batch, np.random.default_rng(7), cut + 8)
    rng = np.random.default_rng(7)
    first = ShuffledBatches(n, batch)
    got = [first.next(rng) for _ in range(cut)]
    saved = json.loads(json.dumps({"rng": rng.bit_generator.state, "order": first.state()}))
    second = ShuffledBatches(n, batch)
    second.restore(saved["order"])
    rng2 = np.random.Generator(bit_generator_from_state(saved["rng"]))
    got += [second.next(rng2) for _ in range(8)]
    assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))


def test_resume_draws_only_the_remaining_batches(tmp_path, data_file):
    """The data order is restored from the checkpoint, not by replaying the batches before it."""
    part, _ = _trainer("icnet", data_file, tmp_path, 3)
    part.run()
    resumed, ev = _trainer("icnet", data_file, tmp_path, 5)
    calls = []
    sampler_next = resumed.recipe.sampler.next
    resumed.recipe.sampler.next = lambda rng: calls.append(1) or sampler_next(rng)
    resumed.run(resume=True)
    assert len(calls) == 2 and [e["done"] for e in ev if e["stage"] == "step"] == [4, 5]
    full, ev_full = _trainer("icnet", data_file, tmp_path / "full", 5)
    full.run()
    assert _losses(ev)[5] == _losses(ev_full)[5]


def test_a_checkpoint_without_saved_data_order_still_resumes_exactly(tmp_path, data_file):
    """Checkpoints written before the data order was saved: the stream is replayed up to the step."""
    part, _ = _trainer("icnet", data_file, tmp_path / "b", 2)
    part.run()
    js = tmp_path / "b" / "checkpoint" / "state.json"
    meta = json.loads(js.read_text())
    del meta["data"]
    js.write_text(json.dumps(meta))
    resumed, ev = _trainer("icnet", data_file, tmp_path / "b", 4)
    resumed.run(resume=True)
    full, ev_full = _trainer("icnet", data_file, tmp_path / "a", 4)
    full.run()
    assert _losses(ev)[3] == _losses(ev_full)[3] and _losses(ev)[4] == _losses(ev_full)[4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_rng_state_is_saved_and_restored(tmp_path, data_file):
    from ctstudio import checkpoints

    t, _ = _trainer("icnet", data_file, tmp_path, 2, device="cuda")
    t.run()
    saved = checkpoints.load_tensors(t.ckpt_base)["rng.cuda"]
    torch.cuda.manual_seed(12345)
    assert not torch.equal(torch.cuda.get_rng_state(), saved)
    r, _ = _trainer("icnet", data_file, tmp_path, 2, device="cuda")
    gen = r.job(resume=True)
    next(gen)  # the start event: the checkpoint is loaded
    assert torch.equal(torch.cuda.get_rng_state(), saved)
    gen.close()
