"""The pipelines (generate, convert, calibrate) run headless: one event schema, a returned result, cancel,
the CLI writing exactly what the pipeline returns, one device resolver and one model loader."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctstudio.errors import Cancelled, InputError, ModelError
from ctstudio.jobs import CancelToken, run_job, validate_event
from ctstudio.pipelines import devices
from ctstudio.pipelines.calibrate import CalibrateRequest, calibrate
from ctstudio.pipelines.convert import ConvertRequest, choose_target, convert
from ctstudio.pipelines.generate import GenerateRequest, generate, grid_note
from ctstudio.pipelines.models import ScoreBundle, clear_cache, load_model


@pytest.fixture(scope="module")
def sample(sample_path):
    from ctstudio.io import read_volume

    return read_volume(sample_path)


@pytest.fixture(scope="module")
def small(sample):
    """A 40x40x40 block of the head (enough for one 32^3 cGAN block with overlap, and quick)."""
    return sample.with_array(np.ascontiguousarray(sample.array[10:50, 10:50, 12:52]))


def _collect(job):
    events = []
    result = run_job(job, events.append)
    for ev in events:
        validate_event(ev)
    return events, result


# -- generate ---------------------------------------------------------------------------------------
def test_generate_events_follow_the_schema_and_stream_each_slice_where_it_belongs(sample):
    req = GenerateRequest(n_slices=3, seed_volume=sample, seed_slice=20, steps=2, icnet=False)
    events, vol = _collect(generate(req))
    slices = [e for e in events if e["stage"] == "slice"]
    assert [e["done"] for e in slices] == [1, 2, 3] and all(e["total"] == 3 and e["unit"] == "slice" for e in slices)
    # the sample's index runs superior, so the slices below slice 20 are 19, 18, 17
    assert [e["target_index"] for e in slices] == [19, 18, 17]
    # the returned volume holds the streamed slices (rounded to whole HU), placed from slice 17 up
    assert vol.shape == (3, 64, 64)
    for e in slices:
        k = e["target_index"] - 17
        assert np.array_equal(vol.array[k], np.clip(np.rint(e["slice_hu"]), -1024, 3071).astype(np.int16))
    assert np.allclose(vol.origin, sample.index_to_lps(17, 0, 0))
    assert vol.provenance.synthetic and vol.provenance.parameters["icnet"] is False


def test_generate_says_when_the_seed_grid_is_resampled(sample):
    assert grid_note(sample, 64) is None  # the sample is 64x64, like the demo model
    big = sample.with_array(np.zeros((4, 512, 485), np.int16))
    assert grid_note(big, 64) == ("the seed slices are resampled 485x512 -> 64x64; the output has the model's grid "
                                  "(64x64)")
    events, _ = _collect(generate(GenerateRequest(n_slices=1, seed_volume=big, seed_slice=3, steps=1, icnet=False)))
    start = next(e for e in events if e["stage"] == "start")
    assert any("485x512 -> 64x64" in n for n in start["notes"])


def test_the_same_request_runs_again_with_another_sampler(sample):
    """The issue's bug: heun then pc on the same request raised TypeError (a run had rewritten its options)."""
    req = GenerateRequest(n_slices=1, seed_volume=sample, seed_slice=20, steps=2, icnet=False, sampler="heun")
    a = run_job(generate(req))
    b = run_job(generate(dataclasses.replace(req, sampler="pc")))
    c = run_job(generate(req))
    assert a.provenance.parameters["sampler"] == "heun" and b.provenance.parameters["sampler"] == "pc"
    assert np.array_equal(a.array, c.array)  # same seed, same volume, after a pc run in between


def test_generate_cancel_stops_within_one_sampler_step(sample):
    """The token set during slice 1's 3rd sampler step: no further network call, Cancelled raised."""
    token = CancelToken()
    bundle = load_model("score-k2-demo", kind="score", device="cpu").runner
    calls = {"n": 0}
    orig = bundle.model.forward

    def counting(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            token.cancel()
        return orig(*a, **kw)

    bundle.model.forward = counting
    try:
        with pytest.raises(Cancelled):
            run_job(generate(GenerateRequest(n_slices=4, seed_volume=sample, seed_slice=20, steps=25, icnet=False,
                                             device="cpu"), cancel=token))
    finally:
        del bundle.model.forward
    # Heun: 2 calls per step; the 3rd call is the first of step 2, after which the step loop stops
    assert calls["n"] in (3, 4)


def test_generate_refuses_a_wrong_k_and_a_seed_slice_without_a_volume():
    with pytest.raises(InputError, match="does not match the model"):
        run_job(generate(GenerateRequest(n_slices=1, k=3, steps=1, icnet=False)))
    with pytest.raises(InputError, match="seed slice needs a seed volume"):
        run_job(generate(GenerateRequest(n_slices=1, seed_slice=3, steps=1)))


# -- convert ----------------------------------------------------------------------------------------
def test_convert_kernel_events_and_reference_scores(small):
    ref = small.with_array(np.clip(small.array.astype(np.int32) + 5, -1024, 3071).astype(np.int16))
    req = ConvertRequest(volume=small, model="ggcl-phantom-ub-ya", target="YA", batch_size=16, reference=ref,
                         device="cpu")
    events, res = _collect(convert(req))
    slices = [e for e in events if e["stage"] == "slice"]
    assert [e["done"] for e in slices] == [16, 32, 40] and all(e["job"] == "convert" for e in slices)
    assert res.kind == "ggcl" and res.target == "YA" and res.volume.metadata.kernel == "YA"
    assert res.volume.provenance.synthetic
    # by hand: both clipped to the 12-bit range, data range 4095 HU
    a = np.clip(small.array.astype(np.float64), -1024, 3071)
    b = np.clip(ref.array.astype(np.float64), -1024, 3071)
    assert res.scores["input"]["psnr_db"] == pytest.approx(10 * np.log10(4095 ** 2 / np.mean((a - b) ** 2)), rel=1e-9)
    assert len(res.scores["output"]["psnr_db_per_slice"]) == 40


def test_convert_cgan_yields_block_events_and_cancels_within_a_batch(small):
    token = CancelToken()
    seen = []
    job = convert(ConvertRequest(volume=small, model="cgan-chest-denoise", batch_size=1, overlap=8, device="cpu"),
                  cancel=token)
    with pytest.raises(Cancelled):
        for ev in job:
            validate_event(ev)
            seen.append(ev)
            if ev["stage"] == "block":
                token.cancel()
    blocks = [e for e in seen if e["stage"] == "block"]
    assert len(blocks) == 1 and blocks[0]["total"] == 8 and blocks[0]["unit"] == "block"


def test_convert_target_choice():
    assert choose_target(["UB", "YA"], "ub", None) == "YA"
    assert choose_target(["UB", "YA"], None, "UB") == "UB"
    with pytest.raises(InputError, match="B30f, B50f, B70f"):
        choose_target(["B30f", "B50f", "B70f"], "B30f", None)


# -- calibrate --------------------------------------------------------------------------------------
def test_calibrate_histogram_events_and_anchor(small):
    events, out = _collect(calibrate(CalibrateRequest(small, method="histogram")))
    assert [e["done"] for e in events] == list(range(1, 41)) and events[0]["anchor"]
    assert events[0]["index"] == 39  # the sample's index runs superior: the most superior slice is the anchor
    assert np.array_equal(out.array[39], small.array[39])


def test_calibrate_cancel_stops_between_slices(small):
    token = CancelToken()
    n = 0
    with pytest.raises(Cancelled, match="after 3 of 40"):
        for _ in calibrate(CalibrateRequest(small, method="histogram"), cancel=token):
            n += 1
            if n == 3:
                token.cancel()


# -- one loader, one device resolver --------------------------------------------------------------------
def test_a_model_is_loaded_once_and_reused_and_kinds_are_checked():
    clear_cache()
    a = load_model("score-k2-demo", device="cpu")
    b = load_model("score-k2-demo", kind="score", device="cpu")
    assert a is b and isinstance(a.runner, ScoreBundle) and a.kind == "score"
    with pytest.raises(ModelError, match="the Generate tab takes score models"):
        load_model("icnet-demo", kind="score", device="cpu", purpose="the Generate tab")


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.resolve_device("auto") == "mps"
    assert devices.available_devices() == ["mps", "cpu"]
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("auto") == "cuda"
    assert devices.available_devices() == ["cuda:0", "cuda:1", "cpu"]
    with pytest.raises(InputError, match="not available"):
        devices.resolve_device("cuda:2")


def test_a_cancelled_run_continues_exactly_as_an_uninterrupted_one(sample):
    """Cancel after 2 slices (2 kept), continue for 2 more: the 4 slices equal an uninterrupted 4-slice run."""
    req = GenerateRequest(n_slices=4, seed_volume=sample, seed_slice=20, steps=2, icnet=False, seed=3)
    whole = run_job(generate(req))
    token = CancelToken()
    kept = []
    with pytest.raises(Cancelled):
        for ev in generate(req, cancel=token):
            if ev["stage"] == "slice":
                kept.append(ev)
                if len(kept) == 2:
                    token.cancel()
    assert len(kept) == 2
    rest_events, rest = _collect(generate(dataclasses.replace(req, n_slices=2, resume=kept[-1]["state"])))
    assert [e["target_index"] for e in rest_events if e["stage"] == "slice"] == [17, 16]
    # whole: slices 16..19 (index runs superior); kept: 19, 18; rest: 17, 16
    assert np.array_equal(rest.array, whole.array[:2])
    for e in kept:
        k = e["target_index"] - 16
        assert np.array_equal(np.clip(np.rint(e["slice_hu"]), -1024, 3071).astype(np.int16), whole.array[k])
    assert np.allclose(rest.origin, whole.origin)
