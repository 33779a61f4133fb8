"""The NCSN++-style score network and IC-Net: shapes, preconditioning, K channels."""

import dataclasses
import os

import pytest
import torch

from ctstudio.models.icnet import ICNet, ICNetConfig
from ctstudio.models.layers import count_parameters
from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig


def _random_model(cfg=None, std=0.1):
    """A score model in eval mode with random (not zero-initialised) weights, so every path shows."""
    m = ScoreModel(cfg or ScoreUNetConfig.tiny()).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=std)
    return m


@pytest.mark.parametrize("k,size,mult,attn", [(2, 16, (1, 2), (8,)), (3, 32, (1, 2, 2), (8,)), (2, 32, (1, 2), ())])
def test_score_model_maps_k_slices_to_k_slices(k, size, mult, attn):
    cfg = dataclasses.replace(ScoreUNetConfig.tiny(k), image_size=size, channel_mult=mult, attn_resolutions=attn)
    m = ScoreModel(cfg).eval()
    x = torch.randn(2, k, size, size)
    with torch.no_grad():
        d = m(x, torch.tensor([0.5, 3.0]))
        s = m.score(x, 1.0)
    assert d.shape == x.shape and s.shape == x.shape
    assert torch.isfinite(d).all()


def test_preconditioning_passes_clean_input_through_at_tiny_noise():
    """c_skip -> 1, c_out -> 0 as sigma -> 0: the denoiser is ~identity, whatever the weights."""
    m = _random_model()
    x = torch.rand(1, 2, 16, 16) * 2 - 1
    with torch.no_grad():
        d = m(x, torch.tensor(1e-4))
    assert torch.allclose(d, x, atol=1e-3)


def test_clean_channels_are_returned_as_given_and_fed_at_sigma_zero():
    """clean=[1, 0]: channel 0 is a condition (out = in, exactly); channel 1 still depends on it."""
    m = _random_model()
    x = torch.rand(2, 2, 16, 16) * 2 - 1
    with torch.no_grad():
        d = m(x, torch.tensor(5.0), clean=torch.tensor([1.0, 0.0]))
        x2 = x.clone()
        x2[:, 0] = -x2[:, 0]
        d2 = m(x2, torch.tensor(5.0), clean=torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        plain = m(x, torch.tensor(5.0))
    assert torch.equal(d[:, 0], x[:, 0])
    assert not torch.allclose(d[:, 1], d2[:, 1])  # the condition reaches the generated channel
    assert not torch.allclose(d[:, 1], plain[:, 1])  # and is scaled as a clean input (c_in = 1/sigma_data)


def test_residual_preconditioning_centres_the_generated_slice_on_the_prior_one():
    """sigma_data_residual: a conditioned example's noisy channel is denoised as a change from the last clean
    channel. At init (zero output layer) D = ref + c_skip (x - ref): at a high level that is the prior slice
    itself; an example without clean channels in the same batch keeps the plain preconditioning."""
    cfg = dataclasses.replace(ScoreUNetConfig.tiny(3), sigma_data_residual=0.05)
    m = ScoreModel(cfg).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    clean = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    sigma = torch.tensor([50.0, 50.0])
    with torch.no_grad():
        d = m(x, sigma, clean)
    sr2 = 0.05 ** 2
    ref = x[0, 1]  # the nearest (last) clean channel
    assert torch.allclose(d[0, 2], ref + sr2 / (2500 + sr2) * (x[0, 2] - ref), atol=1e-6)
    assert torch.equal(d[0, :2], x[0, :2])
    assert torch.allclose(d[1], 0.25 / (2500 + 0.25) * x[1], atol=1e-6)  # plain: c_skip x
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        d = m(x, sigma, clean)
    assert torch.equal(d[0, :2], x[0, :2]) and not torch.allclose(d[0, 2], ref, atol=1e-4)


def test_conditional_loss_scores_only_the_generated_channel():
    """cond_prob=1: the loss is over the last channel only, so a model that gets the known channel wrong
    (given clean, it must come back unchanged) is not charged for it, and the noise never touches it."""
    from ctstudio.diffusion.losses import dsm_loss
    from ctstudio.diffusion.sde import VESDE

    x = torch.rand(4, 2, 8, 8) * 2 - 1
    seen = {}

    def perfect_on_last(xn, sigma, clean=None):
        seen["clean"], seen["input"] = clean, xn
        out = xn.clone()
        out[:, 0] = 99.0  # wrong everywhere in the known channel
        out[:, 1] = x[:, 1]  # exact on the generated one
        return out

    loss = dsm_loss(perfect_on_last, x, VESDE(0.01, 10.0), cond_prob=1.0, generator=torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    assert torch.equal(seen["clean"], torch.tensor([[1.0, 0.0]] * 4))
    assert torch.equal(seen["input"][:, 0], x[:, 0])
    uncond = dsm_loss(perfect_on_last, x, VESDE(0.01, 10.0), generator=torch.Generator().manual_seed(0))
    assert uncond.item() > 1.0  # the paper's joint objective scores every channel


def test_conditioning_augmentation_noises_only_the_prior_slices_and_only_a_little():
    from ctstudio.diffusion.losses import dsm_loss
    from ctstudio.diffusion.sde import VESDE

    x = torch.zeros(64, 2, 8, 8)
    seen = {}

    def den(xn, sigma, clean=None):
        seen["input"] = xn
        return xn

    dsm_loss(den, x, VESDE(0.01, 10.0), cond_prob=1.0, cond_noise=0.1, generator=torch.Generator().manual_seed(0))
    sd = seen["input"][:, 0].flatten(1).std(1)
    assert 0 < sd.min() and sd.max() < 0.1 * 1.3 and sd.std() > 0.01  # SD ~ U(0, 0.1) per example


@pytest.mark.parametrize("cond_prob", [0.0, 1.0])
def test_unit_loss_weight_counts_the_network_error_alike_at_every_level(cond_prob):
    """A denoiser whose network output is off by a fixed unit error e (D = x + c_out e) costs |e|^2 at every
    noise level with the unit weighting; the literal lambda = sigma^2 on D gives the high levels
    sd^2 / (sigma^2 + sd^2) of that, i.e. almost nothing above sigma_data."""
    from ctstudio.diffusion.losses import dsm_loss
    from ctstudio.diffusion.sde import VESDE

    sd, sr = 0.5, 0.05
    x = torch.rand(1, 2, 8, 8) * 2 - 1
    e = torch.ones(1, 2, 8, 8)
    for level in (0.01, 1.0, 20.0):
        sde = VESDE(level * 0.999999, level)  # every draw at ~this level
        d = sr if cond_prob else sd

        def den(xn, sigma, clean=None, d=d):
            s = sigma.reshape(-1, 1, 1, 1)
            return x + s * d / torch.sqrt(s ** 2 + d ** 2) * e

        kw = {"cond_prob": cond_prob}
        unit = dsm_loss(den, x, sde, sigma_data=(sd, sr), **kw).item()
        literal = dsm_loss(den, x, sde, **kw).item()
        assert abs(unit - 1.0) < 1e-3, (level, unit)
        assert abs(literal - d ** 2 / (level ** 2 + d ** 2)) < 1e-3, (level, literal)


def test_lognormal_noise_levels_follow_their_parameters_within_the_sde_range():
    from ctstudio.diffusion.losses import sample_sigmas
    from ctstudio.diffusion.sde import VESDE

    sde = VESDE(0.001, 100.0)
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(20000, sde, generator=g, t_sampling="lognormal", p_mean=-1.2, p_std=1.2)
    assert abs(s.log().median().item() + 1.2) < 0.05 and s.min() >= 0.001 and s.max() <= 100.0
    u = sample_sigmas(20000, sde, generator=g)  # t uniform: log sigma uniform over the whole range
    assert abs(u.log().median().item() - 0.5 * (torch.log(torch.tensor(0.1))).item()) < 0.2  # sqrt(0.001 * 100)
    with pytest.raises(ValueError, match="t_sampling"):
        sample_sigmas(2, sde, t_sampling="cosine")


def test_noise_level_changes_the_output():
    m = _random_model(std=0.05)
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        a = m.net(x, torch.tensor([0.0]))
        b = m.net(x, torch.tensor([1.0]))
    assert not torch.allclose(a, b)


def test_channels_last_gives_the_same_result():
    m = _random_model(std=0.05)
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        a = m(x, torch.tensor(0.7))
        m.channels_last = True
        m.to(memory_format=torch.channels_last)
        b = m(x, torch.tensor(0.7))
    assert torch.allclose(a, b, atol=1e-5)


def test_configs_paper_is_large_demo_is_small():
    paper = ScoreUNetConfig.paper(2)
    assert paper.image_size == 256 and paper.in_channels == 2 and 16 in paper.attn_resolutions
    demo = count_parameters(ScoreModel(ScoreUNetConfig.demo()))
    assert demo < 3_000_000


@pytest.mark.parametrize("size", [16, 24, 64])
def test_icnet_is_identity_at_init_and_keeps_shape(size):
    net = ICNet(ICNetConfig.tiny()).eval()
    g = torch.rand(2, 1, size, size) * 2 - 1
    p = torch.rand(2, 1, size, size) * 2 - 1
    with torch.no_grad():
        out = net(g, p)
    assert out.shape == g.shape
    assert torch.equal(out, g)  # zero-initialised residual: an untrained IC-Net changes nothing


def test_score_recipe_init_from_starts_from_a_saved_model(tmp_path):
    """Fine-tuning (init_from) starts from the saved weights; a model of another network config is refused."""
    import dataclasses

    from ctstudio import checkpoints
    from ctstudio.errors import ModelError
    from ctstudio.training.recipe_score import ScoreRecipe, ScoreTrainConfig, model_config

    cfg = ScoreTrainConfig.tiny()
    torch.manual_seed(3)
    a = ScoreRecipe(cfg, None)
    with torch.no_grad():
        for p in a.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = checkpoints.save_model(tmp_path, "a", "score", {"model": a.model}, model_config(cfg), {})
    b = ScoreRecipe(dataclasses.replace(cfg, init_from=str(path), lr=1e-4), None)
    for (k, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), k
    with pytest.raises(ModelError, match="network config"):
        ScoreRecipe(dataclasses.replace(cfg, base_channels=8, init_from=str(path)), None)


def test_a_k3_model_trains_samples_and_streams(tmp_path, phantom_file, one_torch_thread):
    """K = 3 end to end: a tiny config file {"base": "tiny", "k": 3} trains (the command's path), the model file
    says K = 3, and generation with the new default solver streams one slice event per slice, keeps the two seed
    slices as the known channels and returns a volume of the generated slices."""
    import json

    from ctstudio.diffusion.loading import load_score_model
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.jobs import run_job, validate_event
    from ctstudio.pipelines.generate import GenerateRequest, generate
    from ctstudio.pipelines.train import TrainRequest, train

    cfg = tmp_path / "k3.json"
    cfg.write_text(json.dumps({"base": "tiny", "k": 3}))
    summary = run_job(train(TrainRequest(kind="score", data=phantom_file, out=tmp_path / "run", config=str(cfg),
                                         steps=3, device="cpu", checkpoint_every=0, log_every=1)))
    assert summary.steps_done == 3 and summary.model_path.is_file()
    model, sde, meta = load_score_model(summary.model_path)
    assert meta["k"] == 3 and model.cfg.in_channels == 3
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert model(x, torch.tensor([1.0])).shape == x.shape
    seed = head_phantom(shape=(8, 16, 16), noise_sd=5.0, seed=1)
    events = []
    vol = run_job(generate(GenerateRequest(n_slices=3, model=str(summary.model_path), seed_volume=seed, seed_slice=6,
                                           k=3, sampler="dpmpp_2m", steps=4, icnet=False, device="cpu")),
                  events.append)
    slices = [e for e in events if e["stage"] == "slice"]
    for e in events:
        validate_event(e)
    assert [e["done"] for e in slices] == [1, 2, 3] and all(e["slice_hu"].shape == (16, 16) for e in slices)
    # the tiny model is not conditional, so the prior slices are inpainted (noised): 4 solver calls on the grid
    # 20, 0.74, 0.027, 0.001 plus 2 Langevin corrections at each of the 3 levels <= 1 after a step
    assert [e["nfe"] for e in slices] == [4 + 2 * 3] * 3
    assert len(slices[-1]["state"].window) == 2  # K - 1 slices carried to the next one
    assert vol.shape == (3, 16, 16)


_INDUCTOR = pytest.mark.skipif(os.environ.get("CTSTUDIO_TEST_INDUCTOR") != "1",
                               reason="inductor compiles C++ for minutes on the shared 2-core CPU (8 min under load); "
                                      "set CTSTUDIO_TEST_INDUCTOR=1 to run it")


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=[pytest.mark.slow, _INDUCTOR])])
def test_compiled_and_eager_denoiser_agree(backend, one_torch_thread):
    """torch.compile of the score model (dynamo's graph capture and AOT autograd with ``aot_eager``; the C++/Triton
    code generation too with ``inductor``) gives the eager output within float rounding on fixed inputs; where this
    machine has no working compiler the fallback is the eager model itself."""
    from ctstudio.models.score_unet import compile_model

    m = _random_model(std=0.05)
    x = torch.rand(2, 2, 16, 16) * 2 - 1
    sigma = torch.tensor([0.3, 4.0])
    with torch.no_grad():
        eager = m(x, sigma)
    fn, compiled = compile_model(m, (x, sigma), backend=backend)
    if not compiled:
        assert fn is m
        pytest.skip("no working torch.compile backend on this machine (the fallback is the eager model)")
    with torch.no_grad():
        out = fn(x, sigma)
        out2 = fn(x * 0.5, sigma)
        eager2 = m(x * 0.5, sigma)
    assert torch.allclose(out, eager, atol=1e-5) and torch.allclose(out2, eager2, atol=1e-5)
    assert not torch.allclose(out, out2)


def test_a_missing_compiler_falls_back_to_eager_with_one_log_line(monkeypatch, caplog):
    """The compiler fails at the first call (as inductor does without a C++ toolchain): one warning line, the
    eager model back, no error."""
    import logging

    from ctstudio.models import score_unet

    def broken_compile(model, **kw):
        def call(*a, **k):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx\n"
                               "second line of the traceback text")
        return call

    monkeypatch.setattr(score_unet.torch, "compile", broken_compile)
    m = _random_model()
    x = torch.rand(1, 2, 16, 16)
    with caplog.at_level(logging.WARNING, logger="ctstudio.models.score_unet"):
        fn, compiled = score_unet.compile_model(m, (x, torch.tensor([1.0])))
    assert fn is m and compiled is False
    records = [r for r in caplog.records if r.name == "ctstudio.models.score_unet"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "InvalidCxxCompiler" in records[0].getMessage() and "eagerly" in records[0].getMessage()
