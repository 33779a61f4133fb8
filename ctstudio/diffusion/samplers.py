"""Samplers with one signature (k-diffusion style)::

    sample_xxx(model, x, sigmas, known=None, mask=None, callback=None, cancel=None, generator=None, **options)

* ``model(x, sigma) -> denoised x`` (a denoiser; the score is ``(D - x) / sigma^2``);
* ``x``: the start, already noise at ``sigmas[0]``;
* ``sigmas``: descending noise levels ending in 0;
* ``known``/``mask``: inpainting. Where ``mask`` is 1, the result is ``known``: after every step the known
  part is re-imposed, noised to the current level (Song et al., controllable generation);
* ``condition``: ``"noised"`` (that inpainting, the paper's) or ``"clean"``: whole known channels are given to
  the model *clean* as a condition (``model(x, sigma, clean=channel_mask)``) and kept exactly as given; this
  needs a model trained with ``cond_prob > 0`` (:mod:`ctstudio.diffusion.losses`);
* ``callback(dict)``: after each step, an event of the one schema (:mod:`ctstudio.jobs`): job ``"sample"``,
  stage ``"step"``, ``done`` of ``total`` steps, plus ``sigma``, ``sigma_next``, ``x``, ``denoised``, ``nfe``;
* ``cancel``: a :class:`~ctstudio.jobs.CancelToken` (or callable), checked before each step and before each
  corrector step (raises ``Cancelled``), so a cancel waits for at most one network call.

``sample_pc``: the paper's predictor-corrector (reverse-diffusion predictor + Langevin corrector at a
signal-to-noise ratio ``snr``) on the SDE's geometric grid. ``sample_heun``: Karras et al.'s second-order
deterministic sampler (Algorithm 2) with optional churn, on a Karras grid. ``sample_dpmpp_2m``: DPM-Solver++(2M)
(Lu et al. 2022), a multistep solver of the probability-flow ODE in the data-prediction (denoiser) form, on a
log-uniform grid (:data:`GRIDS`; the Karras grid works too): one network call per step, second order from the second step on by reusing the previous step's
denoised estimate.
"""

from __future__ import annotations

import math

import torch

from ctstudio.jobs import Progress, check_cancel


class _Inpaint:
    """Re-imposes the known part noised to level sigma: ``known + sigma * eps``.

    ``fixed_noise=True`` draws ``eps`` once per sampling run (the known part then follows one consistent
    noise trajectory, which is what a deterministic ODE sampler expects); ``False`` draws fresh noise at
    every step (Song et al.'s stochastic PC inpainting).
    """

    def __init__(self, known, mask, generator, fixed_noise: bool, condition: str = "noised"):
        if condition not in ("noised", "clean"):
            raise ValueError(f"condition must be 'noised' or 'clean', not {condition!r}")
        self.known = known
        self.mask = None if mask is None else mask.to(torch.float32)
        self.generator = generator
        self.clean = condition == "clean" and self.mask is not None
        self.channels = None  # (B, K) whole channels given clean
        if self.clean:
            full = self.mask.flatten(2)
            if not torch.all((full.amin(-1) == full.amax(-1))):
                raise ValueError("condition='clean' needs whole known channels (the mask constant per channel)")
            self.channels = full.amax(-1)
        self.fixed = None
        if self.mask is not None and fixed_noise and not self.clean:
            self.fixed = torch.randn(known.shape, generator=generator, device=known.device)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if self.mask is None:
            return x
        noisy = self.known
        if sigma > 0 and not self.clean:
            eps = self.fixed if self.fixed is not None else torch.randn(x.shape, generator=self.generator,
                                                                         device=x.device)
            noisy = self.known + sigma * eps
        return self.mask * noisy + (1.0 - self.mask) * x

    def denoiser(self, model):
        """``model`` as ``f(x, sigma)``, given the clean channels when conditioning on them."""
        if not self.clean:
            return model
        return lambda x, sigma: model(x, sigma, clean=self.channels)

    def free_norm(self, v: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the norm of ``v`` on the generated (not clean-known) part."""
        if self.clean:
            v = v * (1.0 - self.mask)
        return v.flatten(1).norm(dim=1).mean()


def _sigma_batch(x, sigma: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(sigma), device=x.device, dtype=torch.float32)


def _start(model, x, sigmas, known, mask, generator, fixed_noise: bool, condition: str, callback,
           clip_denoised: bool = False):
    """What every sampler starts with: the inpainting, the model as it sees the known part, the denoiser (clamped to
    the data range with ``clip_denoised``), the noise levels as floats, the start re-imposed at the first, the
    number of steps and the progress reporter."""
    imp = _Inpaint(known, mask, generator, fixed_noise, condition)
    model = imp.denoiser(model)
    den = (lambda a, sg: model(a, sg).clamp(-1.0, 1.0)) if clip_denoised else model
    sig = [float(s) for s in sigmas]
    n = len(sig) - 1
    return imp, model, den, sig, imp(x, sig[0]), n, Progress("sample", n, "step", callback)


@torch.no_grad()
def sample_heun(model, x, sigmas, known=None, mask=None, callback=None, cancel=None, generator=None,
                churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                fixed_noise: bool = False, n_corrector: int = 0, snr: float = 0.16,
                corrector_smax: float = float("inf"), clip_denoised: bool = False, condition: str = "noised"):
    """``corrector_smax``: Langevin corrections only at levels <= this (fine detail, not layout);
    ``clip_denoised``: clamp the denoised estimate to the data range [-1, 1] before each Euler/Heun step."""
    imp, model, den, sig, x, n, progress = _start(model, x, sigmas, known, mask, generator, fixed_noise, condition,
                                                  callback, clip_denoised)
    nfe = 0
    for i in range(n):
        check_cancel(cancel, f"sampling stopped at step {i} of {n}")
        s, s_next = sig[i], sig[i + 1]
        gamma = min(churn / n, math.sqrt(2.0) - 1.0) if (churn > 0 and s_tmin <= s <= s_tmax) else 0.0
        s_hat = s * (1.0 + gamma)
        if gamma > 0:
            eps = torch.randn(x.shape, generator=generator, device=x.device) * s_noise
            x = x + math.sqrt(s_hat ** 2 - s ** 2) * eps
            x = imp(x, s_hat)
        denoised = den(x, _sigma_batch(x, s_hat))
        nfe += 1
        d = (x - denoised) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            denoised2 = den(x_next, _sigma_batch(x, s_next))
            nfe += 1
            d2 = (x_next - denoised2) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (d + d2)
        x = imp(x_next, s_next)
        if 0 < s_next <= corrector_smax:  # Langevin correction: lets the free part agree with the known part
            x, nfe = _correct(model, x, s_next, n_corrector, snr, generator, imp, cancel, nfe,
                              f"sampling stopped at step {i + 1} of {n}")
        if callback is not None:
            progress.event("step", i + 1, sigma=s, sigma_next=s_next, x=x, denoised=denoised, nfe=nfe)
    return x


def _correct(model, x, s, n_corrector, snr, generator, imp, cancel, nfe, where):
    """``n_corrector`` Langevin corrections at level ``s``, each after a cancel check; returns (x, nfe)."""
    for _ in range(n_corrector):
        check_cancel(cancel, where)
        x = imp(_langevin(model, x, s, snr, generator, imp), s)
        nfe += 1
    return x, nfe


def _langevin(model, x, s, snr, generator, imp):
    grad = (model(x, _sigma_batch(x, s)) - x) / s ** 2
    z = torch.randn(x.shape, generator=generator, device=x.device)
    g = imp.free_norm(grad)
    zn = imp.free_norm(z)
    step = 2.0 * (snr * zn / g.clamp_min(1e-12)) ** 2
    return x + step * grad + torch.sqrt(2.0 * step) * z


@torch.no_grad()
def sample_pc(model, x, sigmas, known=None, mask=None, callback=None, cancel=None, generator=None,
              snr: float = 0.16, n_corrector: int = 1, fixed_noise: bool = False, condition: str = "noised"):
    imp, model, _, sig, x, n, progress = _start(model, x, sigmas, known, mask, generator, fixed_noise, condition,
                                                callback)
    nfe = 0
    for i in range(n):
        check_cancel(cancel, f"sampling stopped at step {i} of {n}")
        s, s_next = sig[i], sig[i + 1]
        # corrector: Langevin MCMC at the current level
        x, nfe = _correct(model, x, s, n_corrector, snr, generator, imp, cancel, nfe,
                          f"sampling stopped at step {i} of {n}")
        # predictor: reverse diffusion from s to s_next
        denoised = model(x, _sigma_batch(x, s))
        nfe += 1
        score = (denoised - x) / s ** 2
        dvar = s ** 2 - s_next ** 2
        x = x + dvar * score
        if s_next > 0:
            x = x + math.sqrt(dvar) * torch.randn(x.shape, generator=generator, device=x.device)
        x = imp(x, s_next)
        if callback is not None:
            progress.event("step", i + 1, sigma=s, sigma_next=s_next, x=x, denoised=denoised, nfe=nfe)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, known=None, mask=None, callback=None, cancel=None, generator=None,
                    clip_denoised: bool = False, condition: str = "noised", fixed_noise: bool = False,
                    n_corrector: int = 0, snr: float = 0.16, corrector_smax: float = float("inf")):
    """DPM-Solver++(2M): the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` solved exactly in
    its linear part, with ``D`` linear in ``lambda = -log sigma`` between grid points (Lu et al. 2022, Alg. 2;
    as k-diffusion's ``sample_dpmpp_2m``).

    With ``h = lambda_next - lambda``, one step is ``x_next = (sigma_next / sigma) x + (1 - e^-h) D'``, where
    ``D'`` is the current denoised estimate ``D_i`` on the first step (first order: DDIM) and on the last step
    (``sigma_next = 0``: ``x_next = D_i``), and otherwise ``D' = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}`` with
    ``r = h_last / h``. One network call per step: ``len(sigmas) - 1`` calls in all (``network_calls``).
    ``clip_denoised``, ``condition``, inpainting and the optional Langevin corrections (``n_corrector`` at the
    levels ``<= corrector_smax``) work as in :func:`sample_heun`; on the default path no noise is drawn, so
    ``generator`` is used only by noised inpainting and corrections.
    """
    imp, model, den, sig, x, n, progress = _start(model, x, sigmas, known, mask, generator, fixed_noise, condition,
                                                  callback, clip_denoised)
    nfe = 0
    old_denoised, h_last = None, None
    for i in range(n):
        check_cancel(cancel, f"sampling stopped at step {i} of {n}")
        s, s_next = sig[i], sig[i + 1]
        denoised = den(x, _sigma_batch(x, s))
        nfe += 1
        if s_next == 0:
            x_next = denoised
            h = None
        else:
            h = math.log(s / s_next)  # lambda_next - lambda, lambda = -log sigma
            d = denoised
            if old_denoised is not None:
                r = h_last / h
                d = (1.0 + 0.5 / r) * denoised - (0.5 / r) * old_denoised
            x_next = (s_next / s) * x - math.expm1(-h) * d
        x = imp(x_next, s_next)
        if 0 < s_next <= corrector_smax:
            x, nfe = _correct(model, x, s_next, n_corrector, snr, generator, imp, cancel, nfe,
                              f"sampling stopped at step {i + 1} of {n}")
        old_denoised, h_last = denoised, h
        if callback is not None:
            progress.event("step", i + 1, sigma=s, sigma_next=s_next, x=x, denoised=denoised, nfe=nfe)
    return x


SAMPLERS = {"pc": sample_pc, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}
#: the sampler ASCII generation should use when none is named, by condition mode. With the clean prior slice
#: DPM-Solver++(2M) at 12 calls matched Heun 25 (49 calls) on the demo model (bench/sampler_bench.py: MAE 22.4 +-
#: 0.6 vs 23.0 +- 0.6 HU, bMMD2 14.45 vs 14.50, adjacent |dHU| 28.2 vs 28.7, over 3 seeds; 16-slice run 37.6 vs
#: 38.8 HU). For the paper's noised inpainting it did not: Heun with churn and corrections stays the default there.
DEFAULT_SAMPLERS = {"clean": "dpmpp_2m", "noised": "heun"}


def default_sampler(condition: str = "clean") -> str:
    """The default sampler name for ``condition`` ("clean" prior slices or the paper's "noised" inpainting)."""
    if condition not in DEFAULT_SAMPLERS:
        raise ValueError(f"condition must be 'noised' or 'clean', not {condition!r}")
    return DEFAULT_SAMPLERS[condition]
#: the paper's PC step count and the fast sampler's default
DEFAULT_STEPS = {"pc": 1000, "heun": 25, "dpmpp_2m": 12}
#: default options for ASCII generation. Plain deterministic Heun with re-imposed known slices follows the
#: prior slice poorly (the ODE fixes the new slice's layout at high noise, when the known slice is still
#: noise); churn plus Langevin corrections let the new slice agree with the prior one. Corrections only at
#: the low levels (sigma <= 1, i.e. < ~2000 HU of noise: fine anatomy, not layout), two per level, were
#: measured better than one at every level on the demo model (bench/sampler_bench.py, resources/models/README.md);
#: clamping the denoised estimate to the data range [-1, 1] lowered the drift further.
DEFAULT_OPTIONS = {"pc": {"snr": 0.16, "n_corrector": 1},
                   "heun": {"churn": 80.0, "n_corrector": 2, "snr": 0.5, "corrector_smax": 1.0,
                            "clip_denoised": True},
                   # the plain ODE gave 193 HU MAE here (Heun ODE 182); two corrections at sigma <= 1 give 127 at 26
                   # calls (Heun's default: 104 at 69 calls)
                   "dpmpp_2m": {"n_corrector": 2, "snr": 0.5, "corrector_smax": 1.0, "clip_denoised": True}}


#: options for a model conditioned on clean prior slices (condition="clean"): the new slice is sampled from
#: s(x_new | prior slices) directly, so no corrections are needed to make it agree with the prior slice.
CONDITIONAL_OPTIONS = {"pc": {"snr": 0.16, "n_corrector": 1},
                       "heun": {"churn": 0.0, "n_corrector": 0, "clip_denoised": True},
                       "dpmpp_2m": {"clip_denoised": True}}


def default_options(name: str, condition: str = "noised") -> dict:
    """The ASCII defaults of sampler ``name`` for the paper's inpainting or for clean conditioning."""
    get_sampler(name)  # a clear error for an unknown name
    return dict((CONDITIONAL_OPTIONS if condition == "clean" else DEFAULT_OPTIONS)[name])


def get_sampler(name: str):
    from ctstudio.errors import InputError

    if name not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


#: the noise-level grid of each sampler: "geometric" (the SDE's own, uniform in log sigma) or "karras" (rho 7).
#: DPM-Solver++(2M) takes equal steps in log sigma (DPM-Solver's "logSNR" spacing): at 12 calls it was as good
#: as the Karras grid on the demo model (bench/sampler_bench.py --dpm-grids both; MAE 22.4 vs 23.1 HU, within
#: the spread over seeds) and better on the analytic Gaussian (SD 3 % vs 11 % off).
GRIDS = {"pc": "geometric", "heun": "karras", "dpmpp_2m": "geometric"}


def sigmas_for(name: str, sde, steps: int, device="cpu") -> torch.Tensor:
    """The grid each sampler is meant for (:data:`GRIDS`): geometric for PC and DPM-Solver++, Karras for Heun."""
    get_sampler(name)
    if GRIDS[name] == "geometric":
        return sde.geometric_sigmas(steps, device)
    return sde.karras_sigmas(steps, device=device)


def network_calls(name: str, steps: int, n_corrector: int | None = None, sigmas=None,
                  corrector_smax: float = float("inf")) -> int:
    """Network calls per sample; with ``corrector_smax`` pass the ``sigmas`` (corrected levels only)."""
    if name == "pc":
        return steps * (1 + (1 if n_corrector is None else n_corrector))
    corrected = steps - 1
    if sigmas is not None:
        corrected = sum(1 for s in [float(v) for v in sigmas][1:] if 0 < s <= corrector_smax)
    solver = steps if name == "dpmpp_2m" else 2 * steps - 1  # one call per step; Heun two (one on the last)
    return solver + corrected * (n_corrector or 0)
