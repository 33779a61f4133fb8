"""VE-SDE schedule and the denoising score matching loss."""

import math

import pytest
import torch

from ctstudio.diffusion.losses import dsm_loss
from ctstudio.diffusion.sde import VESDE


def test_sigma_schedule_matches_the_paper_formula():
    sde = VESDE.paper()
    assert sde.sigma(0.0) == pytest.approx(0.001)
    assert sde.sigma(1.0) == pytest.approx(1348.0)
    assert sde.sigma(0.5) == pytest.approx(0.001 * (1348 / 0.001) ** 0.5)
    t = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(sde.t_of_sigma(sde.sigma(t)), t, atol=1e-5)
    assert VESDE.paper_windowed().sigma_min == 0.01


@pytest.mark.parametrize("grid", ["geometric_sigmas", "karras_sigmas"])
def test_grids_descend_from_sigma_max_to_sigma_min_then_zero(grid):
    sde = VESDE(0.002, 80.0)
    s = getattr(sde, grid)(10)
    assert len(s) == 11 and s[-1] == 0
    assert s[0].item() == pytest.approx(80.0, rel=1e-5) and s[-2].item() == pytest.approx(0.002, rel=1e-4)
    assert torch.all(s[:-1] > s[1:])


def test_dsm_loss_is_smallest_for_the_exact_denoiser():
    """For Gaussian data N(mu, s^2) the exact denoiser gives the lowest loss (and ~ its analytic value)."""
    mu, s = 0.3, 0.5
    sde = VESDE(0.01, 20.0)
    exact = lambda x, sig: (s ** 2 * x + sig[:, None, None, None] ** 2 * mu) / (s ** 2 + sig[:, None, None, None] ** 2)  # noqa: E731
    wrong = lambda x, sig: exact(x, sig) * 0.9  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x = mu + s * torch.randn(4096, 1, 2, 2, generator=g)
    l_exact = dsm_loss(exact, x, sde, generator=torch.Generator().manual_seed(1)).item()
    l_wrong = dsm_loss(wrong, x, sde, generator=torch.Generator().manual_seed(1)).item()
    assert l_exact < l_wrong
    # E[(D - x)^2 / sigma^2] = s^2 / (s^2 + sigma^2) for the exact posterior mean, averaged over log-uniform sigma
    ts = torch.linspace(1e-5, 1, 20001)
    sig = sde.sigma(ts)
    expected = (s ** 2 / (s ** 2 + sig ** 2)).mean().item()
    assert l_exact == pytest.approx(expected, rel=0.05)
    assert math.isfinite(l_exact)
