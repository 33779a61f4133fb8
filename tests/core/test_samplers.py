"""Samplers against an analytic score: Gaussian data, exact denoiser known in closed form."""

import pytest
import torch

from ctstudio.diffusion.samplers import (DEFAULT_OPTIONS, DEFAULT_STEPS, SAMPLERS, network_calls, sample_dpmpp_2m,
                                        sample_heun, sample_pc, sigmas_for)
from ctstudio.diffusion.sde import VESDE
from ctstudio.errors import Cancelled
from ctstudio.jobs import CancelToken, validate_event

MU = torch.tensor([0.3, -0.4]).reshape(1, 2, 1, 1)
SD = torch.tensor([0.5, 0.2]).reshape(1, 2, 1, 1)


class GaussianDenoiser:
    """E[x0 | x] for x0 ~ N(MU, SD^2) per channel: the exact denoiser, counting calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        s2 = sigma.reshape(-1, 1, 1, 1) ** 2
        return (SD ** 2 * x + s2 * MU) / (SD ** 2 + s2)


SDE = VESDE(0.002, 40.0)


@pytest.mark.parametrize("name,steps,opts", [("heun", 25, {}), ("heun", 25, {"churn": 10.0}),
                                            ("heun", 25, {"churn": 80.0, "n_corrector": 1, "snr": 0.3}),
                                            ("pc", 300, {"snr": 0.16}), ("dpmpp_2m", 12, {}),
                                            ("dpmpp_2m", 10, {})])
def test_sampler_reproduces_target_mean_and_std(name, steps, opts):
    g = torch.Generator().manual_seed(0)
    sig = sigmas_for(name, SDE, steps)
    x = torch.randn(4000, 2, 2, 2, generator=g) * sig[0]
    den = GaussianDenoiser()
    out = SAMPLERS[name](den, x, sig, generator=g, **opts)
    mean = out.mean(dim=(0, 2, 3))
    std = out.std(dim=(0, 2, 3))
    assert torch.allclose(mean, MU.flatten(), atol=0.03), mean
    assert torch.allclose(std, SD.flatten(), rtol=0.08), std
    assert den.calls == network_calls(name, steps, opts.get("n_corrector"))


def test_the_ascii_default_corrector_trades_some_variance_for_adherence():
    """ASCII's default (Heun + churn + Langevin at snr 0.5 at the low levels) over-disperses a Gaussian by a
    known amount (unadjusted Langevin's O(step) bias); this pins the figure, so a change is noticed."""
    g = torch.Generator().manual_seed(0)
    sig = sigmas_for("heun", SDE, 25)
    den = GaussianDenoiser()
    opts = {**DEFAULT_OPTIONS["heun"], "clip_denoised": False}  # the Gaussian's tails reach past [-1, 1]
    out = sample_heun(den, torch.randn(4000, 2, 2, 2, generator=g) * sig[0], sig, generator=g, **opts)
    ratio = (out.std(dim=(0, 2, 3)) / SD.flatten())
    assert torch.all((ratio > 1.0) & (ratio < 1.35)), ratio
    assert torch.allclose(out.mean(dim=(0, 2, 3)), MU.flatten(), atol=0.03)
    opts = DEFAULT_OPTIONS["heun"]
    assert den.calls == network_calls("heun", 25, opts["n_corrector"], sigmas=sig,
                                      corrector_smax=opts["corrector_smax"])


def test_clip_denoised_keeps_the_free_channels_in_the_data_range():
    sig = sigmas_for("heun", SDE, 10)
    overshoot = lambda x, sigma: x * 0 + 3.0  # noqa: E731  a denoiser that points outside [-1, 1]
    known = torch.full((2, 2, 4, 4), 0.5)
    mask = torch.zeros_like(known)
    mask[:, 0] = 1
    x = torch.randn(2, 2, 4, 4) * sig[0]
    out = sample_heun(overshoot, x, sig, known=known, mask=mask, clip_denoised=True)
    assert torch.allclose(out[:, 1], torch.ones(2, 4, 4))  # clamped to +1 (unclipped: 3)
    assert torch.equal(out[:, 0], known[:, 0])
    assert torch.allclose(sample_heun(overshoot, x, sig)[:, 1], torch.full((2, 4, 4), 3.0))


def test_corrector_smax_corrects_only_the_low_levels():
    sig = sigmas_for("heun", SDE, 25)
    n_low = int(((sig[1:] > 0) & (sig[1:] <= 1.0)).sum())
    assert 0 < n_low < 24
    den = GaussianDenoiser()
    sample_heun(den, torch.randn(8, 2, 2, 2) * sig[0], sig, n_corrector=2, corrector_smax=1.0)
    assert den.calls == 49 + 2 * n_low == network_calls("heun", 25, 2, sigmas=sig, corrector_smax=1.0)


def test_fast_sampler_needs_20x_fewer_network_calls_than_the_paper_pc():
    opts = DEFAULT_OPTIONS["heun"]
    sig = sigmas_for("heun", VESDE(0.001, 100.0), DEFAULT_STEPS["heun"])  # the demo model's SDE
    fast = network_calls("heun", DEFAULT_STEPS["heun"], opts["n_corrector"], sigmas=sig,
                         corrector_smax=opts["corrector_smax"])
    assert network_calls("pc", DEFAULT_STEPS["pc"]) / fast >= 20


@pytest.mark.parametrize("name", ["heun", "pc", "dpmpp_2m"])
def test_inpainting_keeps_the_known_channels(name):
    g = torch.Generator().manual_seed(1)
    sig = sigmas_for(name, SDE, 20)
    known = torch.zeros(3, 2, 4, 4)
    known[:, 0] = torch.linspace(-1, 1, 16).reshape(4, 4)
    mask = torch.zeros_like(known)
    mask[:, 0] = 1
    x = torch.randn(known.shape, generator=g) * sig[0]
    out = SAMPLERS[name](GaussianDenoiser(), x, sig, known=known, mask=mask, generator=g)
    assert torch.equal(out[:, 0], known[:, 0])
    # the free channel still follows its own (independent) marginal, not the known one
    assert abs(out[:, 1].mean().item() - MU[0, 1].item()) < 0.3


@pytest.mark.parametrize("name", ["heun", "pc", "dpmpp_2m"])
def test_same_seed_same_samples_other_seed_other_samples(name):
    sig = sigmas_for(name, SDE, 8)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return SAMPLERS[name](GaussianDenoiser(), torch.randn(2, 2, 3, 3, generator=g) * sig[0], sig, generator=g,
                              **({"churn": 5.0} if name == "heun" else {}))  # dpmpp_2m: the start noise only

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize("sampler,calls_per_step", [(sample_heun, 2), (sample_pc, 2), (sample_dpmpp_2m, 1)])
def test_cancel_stops_within_one_step(sampler, calls_per_step):
    sig = sigmas_for("heun", SDE, 50)
    den = GaussianDenoiser()
    seen = []
    flag = {"stop": False}

    def cb(ev):
        seen.append(ev["done"] - 1)
        if ev["done"] == 5:
            flag["stop"] = True

    with pytest.raises(Cancelled):
        sampler(den, torch.randn(1, 2, 2, 2) * sig[0], sig, callback=cb, cancel=lambda: flag["stop"])
    assert seen[-1] == 4  # no step ran after the one during which cancel was set
    assert den.calls == 5 * calls_per_step  # Heun: 2 per step; PC: corrector + predictor; DPM-Solver++(2M): 1


def test_callback_reports_progress_each_step():
    sig = sigmas_for("heun", SDE, 6)
    evs = []
    sample_heun(GaussianDenoiser(), torch.randn(1, 2, 2, 2) * sig[0], sig, callback=evs.append)
    assert [e["done"] for e in evs] == list(range(1, 7))
    assert evs[-1]["sigma_next"] == 0 and evs[-1]["nfe"] == 11
    for e in evs:
        validate_event(e)
        assert (e["job"], e["stage"], e["total"], e["unit"]) == ("sample", "step", 6, "step")


def test_cancel_during_corrector_steps_waits_for_one_network_call():
    """A cancel set while Langevin corrections run stops before the next correction, not at the next step."""
    sig = sigmas_for("heun", SDE, 10)
    token = CancelToken()
    den = GaussianDenoiser()
    calls_at_cancel = {}

    def counting(x, sigma):
        out = den(x, sigma)
        if den.calls == 3:  # 2 Heun calls of step 0, then the first of 5 corrections
            token.cancel()
            calls_at_cancel["n"] = den.calls
        return out

    with pytest.raises(Cancelled):
        sample_heun(counting, torch.randn(1, 2, 2, 2) * sig[0], sig, cancel=token, n_corrector=5)
    assert den.calls == calls_at_cancel["n"] == 3


class ConditionalGaussianDenoiser:
    """Channels (a, b) jointly Gaussian with correlation RHO. Given ``a`` clean (``clean=[1, 0]``), the exact
    denoiser of ``b`` is the posterior mean under b | a ~ N(m(a), v); the clean channel is returned as it is."""

    MA, SA, MB, SB, RHO = 0.2, 0.4, -0.3, 0.3, 0.8

    def __init__(self):
        self.calls = 0
        self.saw_clean = []

    def cond(self, a):
        m = self.MB + self.RHO * self.SB / self.SA * (a - self.MA)
        return m, self.SB ** 2 * (1 - self.RHO ** 2)

    def __call__(self, x, sigma, clean=None):
        self.calls += 1
        self.saw_clean.append(clean)
        assert clean is not None and torch.all(clean[:, 0] == 1) and torch.all(clean[:, 1] == 0)
        s2 = sigma.reshape(-1, 1, 1) ** 2
        m, v = self.cond(x[:, 0])
        out = x.clone()
        out[:, 1] = (v * x[:, 1] + s2 * m) / (v + s2)
        return out


@pytest.mark.parametrize("name,steps,opts", [("heun", 25, {}), ("heun", 25, {"churn": 20.0}),
                                            ("pc", 200, {"snr": 0.16}), ("dpmpp_2m", 12, {}),
                                            ("dpmpp_2m", 10, {})])
def test_clean_condition_samples_the_conditional_distribution(name, steps, opts):
    """condition='clean': the known channel goes to the model clean, stays exact, and the free channel follows
    b | a: for a fixed a, the exact conditional mean and SD (which inpainting only approaches)."""
    g = torch.Generator().manual_seed(0)
    sig = sigmas_for(name, SDE, steps)
    den = ConditionalGaussianDenoiser()
    a_value = 0.7
    known = torch.zeros(3000, 2, 1, 1)
    known[:, 0] = a_value
    mask = torch.zeros_like(known)
    mask[:, 0] = 1
    x = torch.randn(known.shape, generator=g) * sig[0]
    out = SAMPLERS[name](den, x, sig, known=known, mask=mask, generator=g, condition="clean", **opts)
    assert torch.equal(out[:, 0], known[:, 0])
    m, v = den.cond(torch.tensor(a_value))
    assert abs(out[:, 1].mean().item() - m.item()) < 0.01, out[:, 1].mean()
    assert abs(out[:, 1].std().item() / v ** 0.5 - 1) < 0.08, out[:, 1].std()
    assert den.calls == network_calls(name, steps, opts.get("n_corrector", 1 if name == "pc" else 0))


def test_clean_condition_needs_whole_known_channels():
    sig = sigmas_for("heun", SDE, 4)
    known = torch.zeros(1, 2, 4, 4)
    mask = torch.zeros_like(known)
    mask[:, 0, :2] = 1  # half a channel
    with pytest.raises(ValueError, match="whole known channels"):
        sample_heun(ConditionalGaussianDenoiser(), torch.randn(1, 2, 4, 4), sig, known=known, mask=mask,
                    condition="clean")
    with pytest.raises(ValueError, match="condition must be"):
        sample_heun(GaussianDenoiser(), torch.randn(1, 2, 4, 4), sig, known=known, mask=mask, condition="soft")


def test_conditional_defaults_need_20x_fewer_calls_than_the_paper_pc():
    from ctstudio.diffusion.samplers import default_options

    opts = default_options("heun", "clean")
    sig = sigmas_for("heun", VESDE(0.001, 100.0), DEFAULT_STEPS["heun"])
    fast = network_calls("heun", DEFAULT_STEPS["heun"], opts["n_corrector"], sigmas=sig,
                         corrector_smax=opts.get("corrector_smax", float("inf")))
    assert network_calls("pc", DEFAULT_STEPS["pc"]) / fast >= 20


def test_dpmpp_2m_is_one_call_per_step_and_reports_each_step():
    sig = sigmas_for("dpmpp_2m", SDE, 12)
    den = GaussianDenoiser()
    evs = []
    sample_dpmpp_2m(den, torch.randn(2, 2, 2, 2) * sig[0], sig, callback=evs.append)
    assert den.calls == 12 == network_calls("dpmpp_2m", 12) <= 12
    assert [e["done"] for e in evs] == list(range(1, 13)) and [e["nfe"] for e in evs] == list(range(1, 13))
    for e in evs:
        validate_event(e)
        assert (e["job"], e["stage"], e["total"], e["unit"]) == ("sample", "step", 12, "step")
    assert evs[-1]["sigma_next"] == 0


def test_dpmpp_2m_step_by_hand():
    """Two steps on a denoiser that returns fixed images, against the update written out by hand (Lu et al. 2022,
    DPM-Solver++(2M)): first order (DDIM) on the first step, the r-weighted extrapolation on the second, the
    denoised estimate itself on the step to 0."""
    a, b = torch.full((1, 1, 1, 1), 0.3), torch.full((1, 1, 1, 1), -0.2)
    outs = iter([a, b, a])
    x0 = torch.full((1, 1, 1, 1), 5.0)
    s0, s1, s2 = 8.0, 2.0, 0.5
    out = sample_dpmpp_2m(lambda x, s: next(outs), x0, torch.tensor([s0, s1, s2, 0.0]))
    x1 = s1 / s0 * 5.0 + (1 - s1 / s0) * 0.3  # DDIM
    h0, h1 = torch.log(torch.tensor(s0 / s1)).item(), torch.log(torch.tensor(s1 / s2)).item()
    r = h0 / h1
    d = (1 + 1 / (2 * r)) * -0.2 - 1 / (2 * r) * 0.3
    x2 = s2 / s1 * x1 + (1 - s2 / s1) * d
    assert x2 != pytest.approx(s2 / s1 * x1 + (1 - s2 / s1) * -0.2)  # the second-order term matters here
    evs = []
    outs = iter([a, b, a])
    sample_dpmpp_2m(lambda x, s: next(outs), x0, torch.tensor([s0, s1, s2, 0.0]), callback=evs.append)
    assert evs[0]["x"].item() == pytest.approx(x1, rel=1e-6)
    assert evs[1]["x"].item() == pytest.approx(x2, rel=1e-6)
    assert out.item() == pytest.approx(0.3)  # the last step: the denoised estimate


def test_dpmpp_2m_clean_channels_stay_exact_with_a_trained_like_model():
    """condition='clean' through a score network: the known channel comes back bit for bit."""
    from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig

    torch.manual_seed(0)
    m = ScoreModel(ScoreUNetConfig.tiny()).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    sig = sigmas_for("dpmpp_2m", SDE, 6)
    known = torch.zeros(2, 2, 16, 16)
    known[:, 0] = torch.rand(2, 16, 16) * 2 - 1
    mask = torch.zeros_like(known)
    mask[:, 0] = 1
    out = sample_dpmpp_2m(m, torch.randn(known.shape) * sig[0], sig, known=known, mask=mask, condition="clean",
                          clip_denoised=True)
    assert torch.equal(out[:, 0], known[:, 0])
    assert out[:, 1].abs().max() <= 1.0 and not torch.equal(out[:, 1], known[:, 0])


def test_the_default_for_clean_prior_slices_needs_at_most_12_calls_a_quarter_of_heuns():
    """The issue's goal: <= 12 network calls per slice with the clean prior slice (Heun 25: 49); the paper's
    noised inpainting keeps Heun, and DPM-Solver++ there adds corrections at the low levels (fewer than Heun's)."""
    from ctstudio.diffusion.samplers import default_options, default_sampler

    demo_sde = VESDE(0.001, 100.0)
    name = default_sampler("clean")
    assert name == "dpmpp_2m" and default_sampler("noised") == "heun"
    opts = default_options(name, "clean")
    calls = network_calls(name, DEFAULT_STEPS[name], opts.get("n_corrector"))
    heun = network_calls("heun", DEFAULT_STEPS["heun"], 0)
    assert calls <= 12 and heun == 49 and heun / calls >= 4
    noised = default_options("dpmpp_2m", "noised")
    sig = sigmas_for("dpmpp_2m", demo_sde, DEFAULT_STEPS["dpmpp_2m"])
    n_low = int(((sig[1:] > 0) & (sig[1:] <= 1.0)).sum())
    den = GaussianDenoiser()
    sample_dpmpp_2m(den, torch.randn(2, 2, 2, 2) * sig[0], sig, **noised)
    assert den.calls == 12 + 2 * n_low == network_calls("dpmpp_2m", 12, 2, sigmas=sig, corrector_smax=1.0) < 49
    with pytest.raises(ValueError, match="condition"):
        default_sampler("soft")
