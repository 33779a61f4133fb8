"""PSNR, SSIM (paired) and MS-SSIM diversity (unpaired, among generated samples).

Data range. Paired metrics are computed on HU clipped to a stated range and shifted so that its
lower end is 0 (SSIM's luminance term is not shift-invariant; images start at 0 as 8-bit ones do); by default the whole
12-bit CT range [-1024, 3071] HU, so ``data_range = 4095`` HU. Pass another
:class:`~ctstudio.imaging.intensity.HURange` (e.g. the ASCII brain window [-10, 70], data range
80 HU) to measure within a window. The range used is returned with every result.

SSIM is Wang et al. 2004: Gaussian window sigma 1.5 (11 x 11), K1 = 0.01, K2 = 0.03, population
covariances, averaged over the pixels whose window lies inside the image (the border of 5 pixels
is left out, as scikit-image and pytorch-msssim both do). Volumes are scored slice by slice (axial)
and averaged.

The one PSNR/SSIM of ctstudio (``evaluate``, ``convert --reference``, the Convert tab, training
previews): :func:`psnr` and :func:`ssim` for a whole image or volume, :func:`psnr_ssim_per_slice`
for the per-slice curves along z, :func:`paired_metrics` for the full record (PSNR, SSIM, MAE,
RMSE and the range used).

MS-SSIM diversity (the mean MS-SSIM over all pairs of generated images; lower = more diverse) uses
pytorch-msssim (5 scales, the standard weights). Its window shrinks for small images, since five
scales need a side longer than (win - 1) * 16 pixels; the window used is reported.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange

K1, K2 = 0.01, 0.03
SIGMA = 1.5
WIN = 11
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"paired metrics need images of the same shape, got {a.shape} and {b.shape}",
                         hint="PSNR/SSIM compare a volume with its own reference; resample one onto the other's grid")
    return a, b


def _clip(x: np.ndarray, rng: HURange) -> np.ndarray:
    """HU as float64, clipped to ``[rng.lower, rng.upper]``."""
    return np.clip(np.asarray(x, dtype=np.float64), rng.lower, rng.upper)


def mse(ref, test, rng: HURange = FULL_12BIT) -> float:
    """Mean squared difference (HU²) of two HU arrays of one shape, both first clipped to ``rng``."""
    ref, test = _pair(ref, test)
    return float(np.mean((_clip(ref, rng) - _clip(test, rng)) ** 2))


def _psnr_from_mse(m: float, rng: HURange) -> float:
    return float("inf") if m == 0 else float(10.0 * np.log10(rng.width ** 2 / m))


def psnr(ref, test, rng: HURange = FULL_12BIT) -> float:
    """PSNR in dB of a test image or volume against its reference (HU arrays of one shape).

    Both are clipped to ``rng`` (default the 12-bit range [-1024, 3071] HU) before the difference, so
    values outside the range count as its nearest end; ``data_range = rng.width`` HU (4095 by default):
    ``10 log10(rng.width² / MSE)``. For a volume the MSE is taken over all its voxels (not a mean of
    per-slice PSNRs: see :func:`psnr_ssim_per_slice`). ``inf`` when the clipped arrays are identical.
    """
    return _psnr_from_mse(mse(ref, test, rng), rng)


def ssim_maps(x: np.ndarray, y: np.ndarray, data_range: float, sigma: float = SIGMA,
              win: int = WIN) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and contrast-structure (cs) maps of two 2D float images, cropped to the valid region."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    truncate = ((win - 1) / 2) / sigma

    def filt(img):
        return ndimage.gaussian_filter(img, sigma, truncate=truncate, mode="reflect")

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    pad = (win - 1) // 2
    crop = (slice(pad, -pad or None), slice(pad, -pad or None))
    return (lum * cs)[crop], cs[crop]


def ssim2d(x, y, data_range: float) -> float:
    """SSIM of two 2D images already in ``[0, data_range]`` (no clipping here; see :func:`ssim`)."""
    x, y = _pair(x, y)
    if x.ndim != 2 or min(x.shape) < WIN:
        raise InputError(f"SSIM needs 2D images of at least {WIN} x {WIN} pixels, got {x.shape}")
    return float(ssim_maps(x, y, data_range)[0].mean())


def _shifted(ref, test, rng: HURange) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays clipped to ``rng`` and shifted so that ``rng.lower`` is 0 (the input of SSIM)."""
    return _clip(ref, rng) - rng.lower, _clip(test, rng) - rng.lower


def ssim(ref, test, rng: HURange = FULL_12BIT) -> float:
    """Mean SSIM of a test image or volume against its reference (HU arrays of one shape).

    Both are clipped to ``rng`` (default [-1024, 3071] HU) and shifted so that ``rng.lower`` is 0;
    ``data_range = rng.width`` HU. 2D: one slice (at least 11 x 11 pixels); 3D (z, y, x): the mean of
    the axial slices' SSIMs (the per-slice values are :func:`psnr_ssim_per_slice`). 1 when identical.
    """
    ref, test = _pair(ref, test)
    a, b = _shifted(ref, test, rng)
    if a.ndim == 2:
        return ssim2d(a, b, rng.width)
    if a.ndim == 3:
        return float(np.mean([ssim2d(a[k], b[k], rng.width) for k in range(a.shape[0])]))
    raise InputError(f"SSIM takes 2D slices or 3D volumes, got {a.ndim} dimensions")


def psnr_ssim_per_slice(ref, test, rng: HURange = FULL_12BIT) -> dict:
    """PSNR (dB) and SSIM of each axial slice of a test volume against its reference, along z.

    ``ref`` and ``test`` are HU volumes (z, y, x) of one shape (a 2D image counts as one slice).
    Clipping and data range as :func:`psnr` and :func:`ssim`: both clipped to ``rng`` (default
    [-1024, 3071] HU), ``data_range = rng.width``. Returns ``{"psnr_db": [...], "ssim": [...],
    "hu_range": [lower, upper], "data_range_hu": width}`` with one value per slice, index k = slice z=k
    (a slice identical to its reference has PSNR ``inf``). The mean of the SSIM list is :func:`ssim`
    of the volume; the PSNR list is not averaged into :func:`psnr` (that one pools the MSE).
    """
    ref, test = _pair(ref, test)
    if ref.ndim == 2:
        ref, test = ref[None], test[None]
    if ref.ndim != 3:
        raise InputError(f"per-slice PSNR/SSIM takes 2D slices or 3D volumes (z, y, x), got {ref.ndim} dimensions")
    a, b = _shifted(ref, test, rng)
    psnrs = [_psnr_from_mse(float(np.mean((a[k] - b[k]) ** 2)), rng) for k in range(a.shape[0])]
    ssims = [ssim2d(a[k], b[k], rng.width) for k in range(a.shape[0])]
    return {"psnr_db": psnrs, "ssim": ssims, "hu_range": [rng.lower, rng.upper], "data_range_hu": rng.width}


def paired_metrics(ref, test, rng: HURange = FULL_12BIT) -> dict:
    """PSNR, SSIM, MAE and RMSE (HU) of a test image/volume against its reference."""
    ref, test = _pair(ref, test)
    m = mse(ref, test, rng)
    return {
        "psnr_db": psnr(ref, test, rng),
        "ssim": ssim(ref, test, rng),
        "mae_hu": float(np.mean(np.abs(_clip(ref, rng) - _clip(test, rng)))),
        "rmse_hu": float(np.sqrt(m)),
        "hu_range": [rng.lower, rng.upper],
        "data_range_hu": rng.width,
    }


# -- multi-scale SSIM -----------------------------------------------------------------------------
def ms_ssim_reference(x, y, data_range: float, weights: Sequence[float] = MS_WEIGHTS, win: int = WIN) -> float:
    """MS-SSIM (Wang, Simoncelli, Bovik 2003) in numpy, independent of pytorch-msssim: cs at every
    scale but the last, SSIM at the last, 2 x 2 average pooling between scales (see :func:`_pool2`)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    values = []
    for level, _ in enumerate(weights):
        s, cs = ssim_maps(x, y, data_range, win=win)
        last = level == len(weights) - 1
        values.append(max(float((s if last else cs).mean()), 0.0))
        if not last:
            x, y = _pool2(x), _pool2(y)
    return float(np.prod([v ** w for v, w in zip(values, weights)]))


def _pool2(img: np.ndarray) -> np.ndarray:
    """2 x 2 average pooling; an odd side gets one zero on each end first, and the trailing zero
    is then dropped (the pooling of torch's avg_pool2d(padding=1), zeros counted)."""
    h, w = img.shape
    ph, pw = h % 2, w % 2
    img = np.pad(img, ((ph, ph), (pw, pw)))
    h2, w2 = img.shape
    img = img[: h2 - h2 % 2, : w2 - w2 % 2]
    h2, w2 = img.shape
    return img.reshape(h2 // 2, 2, w2 // 2, 2).mean(axis=(1, 3))


def ms_ssim_window(shape: tuple[int, int], levels: int = len(MS_WEIGHTS)) -> int:
    """The largest odd Gaussian window (<= 11) that allows ``levels`` scales on images of ``shape``."""
    side = min(shape)
    for win in range(WIN, 1, -2):
        if side > (win - 1) * 2 ** (levels - 1):
            return win
    raise InputError(f"images of {shape[0]} x {shape[1]} pixels are too small for {levels}-scale MS-SSIM "
                     f"(need more than {2 * 2 ** (levels - 1)} pixels a side)")


def ms_ssim_diversity(
    images: Sequence[np.ndarray],
    rng: HURange = FULL_12BIT,
    max_pairs: int | None = None,
    seed: int = 0,
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """Mean pairwise MS-SSIM among a set of HU images (diversity of generated samples: lower = more
    diverse; 1 = all identical). All pairs, or ``max_pairs`` drawn with ``seed``."""
    import torch
    from pytorch_msssim import ms_ssim

    imgs = [np.asarray(i) for i in images]
    if len(imgs) < 2:
        raise InputError(f"MS-SSIM diversity needs at least 2 images, got {len(imgs)}")
    shapes = {i.shape for i in imgs}
    if len(shapes) != 1:
        raise InputError(f"MS-SSIM diversity needs images of one size, got {sorted(shapes)}",
                         hint="generated samples of one model share a size; compare sets of one size")
    shape = imgs[0].shape
    if len(shape) != 2:
        raise InputError(f"MS-SSIM diversity takes 2D images, got shape {shape}")
    win = ms_ssim_window(shape)
    pairs = list(itertools.combinations(range(len(imgs)), 2))
    if max_pairs is not None and len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    stack = torch.from_numpy(np.stack([_clip(i, rng) - rng.lower for i in imgs]).astype(np.float32))[:, None]
    ia = torch.tensor([p[0] for p in pairs])
    ib = torch.tensor([p[1] for p in pairs])
    values = []
    chunk = 64
    with torch.inference_mode():
        for s in range(0, len(pairs), chunk):
            v = ms_ssim(stack[ia[s:s + chunk]], stack[ib[s:s + chunk]], data_range=rng.width,
                        size_average=False, win_size=win)
            values.append(v.double().numpy())
            if callback is not None:
                callback({"stage": "ms-ssim", "done": min(s + chunk, len(pairs)), "total": len(pairs)})
    vals = np.concatenate(values)
    return {"ms_ssim_mean": float(vals.mean()), "ms_ssim_sd": float(vals.std()), "n_images": len(imgs),
            "n_pairs": len(pairs), "window": win, "hu_range": [rng.lower, rng.upper],
            "data_range_hu": rng.width}
