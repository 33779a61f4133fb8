"""Moment-based distribution alignment of real vs synthetic images (Korkinof et al., Radiology: AI 2021).

Each image (an axial slice) becomes a point of five per-image intensity moments of its pixels,
taken as grey levels in [0, 1] of an HU range (the 12-bit range by default):

    M1 mean, M2 variance, M3 skewness E[z^3], M4 kurtosis E[z^4] (Pearson, not excess),
    M5 hyperskewness E[z^5],  with z = (x - mean) / sd.

Alignment of the two point clouds is then measured by

* mutual information (scikit-learn's kNN estimators, fixed seed) between every pair of moments,
  within the real and within the synthetic set, and between each moment and the real/synthetic
  label (``label_mi``; 0 = the moment says nothing about which set an image came from; it is also
  given as a fraction of the label entropy);
* the 3rd-nearest-neighbour test: in the z-scored moment space, for each image r = the distance to
  its 3rd-nearest neighbour *of its own class*; we count how many images (of either class) lie
  within r. With two perfectly overlapping sets of equal size that count averages 6 (3 of each
  class); with disjoint sets it is 3. ``knn_other_class`` is the other-class part (3 vs 0);
* KDE support coverage: a Gaussian KDE (Scott's bandwidth) of the real points; its 97th-percentile
  contour is the density level above which 97 % of real points lie (leave-one-out densities); ``coverage`` is the fraction of synthetic
  points inside it (and ``reverse_coverage`` the same with the roles swapped). Computed in the
  full 5-D space and for every moment pair (the pairs are what the scatter-plot matrix shows).
"""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange

MOMENT_NAMES = ("M1 mean", "M2 variance", "M3 skewness", "M4 kurtosis", "M5 hyperskewness")
K_NEIGHBOUR = 3
COVERAGE_PERCENTILE = 97.0


def image_moments(img: np.ndarray, rng: HURange = FULL_12BIT) -> np.ndarray | None:
    """The five moments of one HU image (None when the image is constant)."""
    x = (np.clip(np.asarray(img, dtype=np.float64), rng.lower, rng.upper) - rng.lower) / rng.width
    x = x.reshape(-1)
    m = x.mean()
    d = x - m
    var = float(np.mean(d * d))
    if var <= 1e-16:
        return None
    z = d / np.sqrt(var)
    z2 = z * z
    return np.array([m, var, float(np.mean(z2 * z)), float(np.mean(z2 * z2)), float(np.mean(z2 * z2 * z))])


def moments_of_volumes(volumes: Iterable[np.ndarray], rng: HURange = FULL_12BIT, axis: int = 0,
                       stride: int = 1) -> tuple[np.ndarray, int]:
    """Moments (n, 5) of every ``stride``-th slice across ``axis`` of each volume, and the number of
    constant slices left out."""
    rows, skipped = [], 0
    for v in volumes:
        a = np.asarray(v)
        if a.ndim == 2:
            a = a[None]
        for k in range(0, a.shape[axis], max(1, stride)):
            m = image_moments(np.take(a, k, axis=axis), rng)
            if m is None:
                skipped += 1
            else:
                rows.append(m)
    return (np.array(rows) if rows else np.zeros((0, 5))), skipped


def _zscore(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pooled = np.concatenate([real, fake])
    mu = pooled.mean(0)
    sd = pooled.std(0)
    sd[sd == 0] = 1.0
    return (real - mu) / sd, (fake - mu) / sd


def knn_neighbour_counts(real: np.ndarray, fake: np.ndarray, k: int = K_NEIGHBOUR) -> dict:
    """The 3rd-nearest-neighbour overlap counts (see the module doc), in z-scored space."""
    from sklearn.neighbors import NearestNeighbors

    if len(real) <= k or len(fake) <= k:
        raise InputError(f"the nearest-neighbour test needs more than {k} images per set, "
                         f"got {len(real)} real and {len(fake)} synthetic")
    zr, zf = _zscore(real, fake)
    pooled = np.concatenate([zr, zf])
    labels = np.r_[np.zeros(len(zr), int), np.ones(len(zf), int)]
    totals, others = [], []
    allnn = NearestNeighbors().fit(pooled)
    for cls, own, offset in ((0, zr, 0), (1, zf, len(zr))):
        nn = NearestNeighbors(n_neighbors=k + 1).fit(own)
        dist, _ = nn.kneighbors(own)
        radius = dist[:, k]  # column 0 is the point itself
        inside = allnn.radius_neighbors(own, radius=radius * (1 + 1e-9) + 1e-12, return_distance=False)
        for i, idx in enumerate(inside):
            idx = idx[idx != offset + i]  # the point itself
            totals.append(len(idx))
            others.append(int(np.sum(labels[idx] != cls)))
    return {"k": k, "knn_total": float(np.mean(totals)), "knn_other_class": float(np.mean(others)),
            "knn_same_class": float(np.mean(np.asarray(totals) - np.asarray(others))),
            "perfect_overlap_total": 2 * k, "disjoint_total": k}


def kde_coverage(real: np.ndarray, fake: np.ndarray, percentile: float = COVERAGE_PERCENTILE) -> dict:
    """Fraction of synthetic points inside the real KDE's ``percentile`` contour, and the reverse."""
    from scipy.stats import gaussian_kde

    def cover(a: np.ndarray, b: np.ndarray) -> float:
        if len(a) <= a.shape[1] + 1:
            raise InputError(f"a {a.shape[1]}-D KDE needs more than {a.shape[1] + 1} points, got {len(a)}")
        try:
            kde = gaussian_kde(a.T)
        except np.linalg.LinAlgError:
            raise InputError("the moments are collinear (singular covariance); the KDE cannot be fitted",
                             hint="use more, or more varied, images") from None
        # The contour level from leave-one-out densities of the real points: a point's own kernel
        # would otherwise inflate its density and shrink the contour (most in many dimensions).
        n, d = a.shape
        k0 = 1.0 / np.sqrt((2 * np.pi) ** d * np.linalg.det(kde.covariance))
        loo = (n * kde(a.T) - k0) / (n - 1)
        level = np.percentile(loo, 100.0 - percentile)
        return float(np.mean(kde(b.T) >= level))

    zr, zf = _zscore(real, fake)
    return {"coverage": cover(zr, zf), "reverse_coverage": cover(zf, zr), "percentile": percentile}


def mutual_information(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> dict:
    """MI (nats) between moment pairs within each set, and between each moment and the set label."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    def pairs(x: np.ndarray) -> dict[str, float]:
        out = {}
        nn = min(3, max(1, len(x) - 1))
        for i, j in itertools.combinations(range(x.shape[1]), 2):
            mi = mutual_info_regression(x[:, [i]], x[:, j], n_neighbors=nn, random_state=seed)[0]
            out[f"M{i + 1}-M{j + 1}"] = float(mi)
        return out

    x = np.concatenate([real, fake])
    y = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    nn = min(3, max(1, min(len(real), len(fake)) - 1))
    label = mutual_info_classif(x, y, n_neighbors=nn, random_state=seed)
    p = len(real) / len(x)
    h = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    r, f = pairs(real), pairs(fake)
    return {
        "pairs_real": r,
        "pairs_synthetic": f,
        "pairs_mean_abs_difference": float(np.mean([abs(r[k] - f[k]) for k in r])),
        "label_mi": {f"M{i + 1}": float(v) for i, v in enumerate(label)},
        "label_mi_fraction_of_entropy": {f"M{i + 1}": float(v / h) for i, v in enumerate(label)},
        "label_entropy_nats": h,
    }


def pair_coverage(real: np.ndarray, fake: np.ndarray, percentile: float = COVERAGE_PERCENTILE) -> dict[str, float]:
    out = {}
    for i, j in itertools.combinations(range(real.shape[1]), 2):
        try:
            out[f"M{i + 1}-M{j + 1}"] = kde_coverage(real[:, [i, j]], fake[:, [i, j]], percentile)["coverage"]
        except InputError:
            out[f"M{i + 1}-M{j + 1}"] = float("nan")
    return out


def distribution_alignment(real_volumes: Sequence[np.ndarray], fake_volumes: Sequence[np.ndarray],
                           rng: HURange = FULL_12BIT, stride: int = 1, seed: int = 0) -> dict:
    """Everything above for two sets of HU volumes (axial slices as images). Returns the numbers and
    the moment arrays (``real_moments`` / ``fake_moments``, for plotting; not JSON)."""
    real, skip_r = moments_of_volumes(real_volumes, rng, stride=stride)
    fake, skip_f = moments_of_volumes(fake_volumes, rng, stride=stride)
    if len(real) < 2 or len(fake) < 2:
        raise InputError(f"the moment analysis needs at least 2 non-constant slices per set, "
                         f"got {len(real)} real and {len(fake)} synthetic")
    out: dict = {
        "n_real_images": int(len(real)), "n_fake_images": int(len(fake)),
        "constant_slices_left_out": {"real": skip_r, "synthetic": skip_f},
        "moment_names": list(MOMENT_NAMES),
        "hu_range": [rng.lower, rng.upper],
        "real_mean": real.mean(0).tolist(), "fake_mean": fake.mean(0).tolist(),
        "mutual_information": mutual_information(real, fake, seed),
    }
    try:
        out["nearest_neighbours"] = knn_neighbour_counts(real, fake)
    except InputError as exc:
        out["nearest_neighbours"] = {"error": str(exc)}
    try:
        out["kde_support"] = kde_coverage(real, fake)
    except InputError as exc:
        out["kde_support"] = {"error": str(exc)}
    out["kde_support_pairs"] = pair_coverage(real, fake)
    out["real_moments"] = real
    out["fake_moments"] = fake
    return out
