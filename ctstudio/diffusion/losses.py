"""Denoising score matching for the VE-SDE, continuous t, lambda(t) = sigma(t)^2.

``loss = E_t E_z || sigma s(x + sigma z, sigma) + z ||^2`` with ``t ~ U(eps, 1)``; the score
``s = (D - x_noisy) / sigma^2`` comes from the preconditioned denoiser D, so the term inside the norm is
``(D(x + sigma z, sigma) - x) / sigma``.

Options, all off by default (the paper's objective, literally):

* ``cond_prob``: the fraction of examples in which the first ``n_known`` channels (the prior slices) are given
  clean, as a condition, and only the last channel is noised and scored. A model trained with it is both the
  paper's joint K-slice score model (for inpainting) and a conditional one, ``s(x_new | prior slices)``, which
  samplers use with ``condition="clean"`` (:mod:`ctstudio.diffusion.samplers`).
* ``t_sampling="lognormal"``: ``log sigma ~ N(p_mean, p_std^2)`` (clamped to the SDE's range) instead of t
  uniform, i.e. the same per-level loss spent on the levels that shape the image (Karras et al. 2022, sec. 5)
  rather than evenly over 11 e-folds, most of them pure noise or invisible detail.
* ``sigma_data``: weight each level so that the *network's* error counts the same at every level, as in the
  paper's parameterization. Song et al.'s NCSN++ outputs ``sigma * score`` directly, so lambda = sigma^2 weighs
  its output error uniformly; our preconditioned denoiser ``D = c_skip x + c_out F`` turns the same lambda
  into ``(c_out / sigma)^2 |F - F*|^2 = sigma_data^2 / (sigma^2 + sigma_data^2) |F - F*|^2``, which starves
  every level above sigma_data (the levels that fix a slice's layout) by sigma_data^2 / sigma^2. Passing the
  model's ``(sigma_data, sigma_data_residual)`` multiplies by ``(sigma^2 + sd^2) / sd^2``: a uniform weight on
  F again (Karras et al.'s lambda). ``None`` keeps the literal lambda = sigma^2 on D.
* ``cond_noise``: in conditioned examples, the prior slices get Gaussian noise of an SD drawn from
  U(0, cond_noise) (conditioning augmentation, Ho et al. 2022, "Cascaded diffusion"): slice-by-slice
  generation feeds the model its own, slightly wrong, slices, and a model trained only on perfect prior slices
  copies their errors forward.
"""

from __future__ import annotations

import math

import torch

from ctstudio.diffusion.sde import VESDE


def sample_sigmas(b: int, sde: VESDE, eps: float = 1e-5, generator: torch.Generator | None = None, device="cpu",
                  t_sampling: str = "uniform", p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    if t_sampling == "uniform":
        t = torch.rand(b, generator=generator, device=device) * (1.0 - eps) + eps
        return sde.sigma(t)
    if t_sampling == "lognormal":
        ln = torch.randn(b, generator=generator, device=device) * p_std + p_mean
        return ln.clamp(math.log(sde.sigma_min), math.log(sde.sigma_max)).exp()
    raise ValueError(f"unknown t_sampling {t_sampling!r}; use 'uniform' or 'lognormal'")


def dsm_loss(model, x: torch.Tensor, sde: VESDE, eps: float = 1e-5, generator: torch.Generator | None = None,
             reduce: bool = True, cond_prob: float = 0.0, n_known: int | None = None,
             t_sampling: str = "uniform", p_mean: float = -1.2, p_std: float = 1.2,
             cond_noise: float = 0.0, sigma_data: tuple[float, float] | None = None) -> torch.Tensor:
    b, k = x.shape[:2]
    sigma = sample_sigmas(b, sde, eps, generator, x.device, t_sampling, p_mean, p_std)
    z = torch.randn(x.shape, generator=generator, device=x.device)
    s = sigma[:, None, None, None]

    def unit(sd):  # (sigma^2 + sd^2) / sd^2: the weight that makes the loss uniform in the network's output
        return 1.0 if sigma_data is None else (s ** 2 + sd ** 2) / sd ** 2

    if cond_prob <= 0:
        denoised = model(x + s * z, sigma)
        per = (((denoised - x) / s).pow(2) * unit(sigma_data[0] if sigma_data else 1.0)).flatten(1).mean(1)
        return per.mean() if reduce else per
    n_known = k - 1 if n_known is None else int(n_known)
    cond = (torch.rand(b, generator=generator, device=x.device) < cond_prob).to(torch.float32)
    known = (torch.arange(k, device=x.device) < n_known).to(torch.float32)
    clean = cond[:, None] * known[None]  # (B, K): 1 where a channel is given clean
    free = (1.0 - clean)[:, :, None, None]
    x_in = x + s * z * free
    if cond_noise > 0:
        aug = torch.rand(b, generator=generator, device=x.device) * cond_noise
        x_in = x_in + aug[:, None, None, None] * clean[:, :, None, None] * torch.randn(
            x.shape, generator=generator, device=x.device)
    denoised = model(x_in, sigma, clean)
    w = 1.0
    if sigma_data is not None:
        sd, sr = sigma_data
        w = unit(sd)
        if sr > 0:  # conditioned examples are preconditioned with the residual SD (ScoreModel.forward)
            c = cond[:, None, None, None]
            w = c * unit(sr) + (1 - c) * w
    err = ((denoised - x) / s).pow(2) * free * w
    per = err.flatten(1).sum(1) / (free.flatten(1).sum(1) * x[0, 0].numel())
    return per.mean() if reduce else per
