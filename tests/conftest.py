"""Shared fixtures.

``shared_data``: the real CT in ../shared/data. Tests that need it skip, with a visible reason,
only where ../shared is absent (someone outside the team); in CI (CI=true) its absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CTSTUDIO_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE = ROOT / "resources" / "sample" / "headsq_hu.nii.gz"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        msg = f"real CT not found at {SHARED_DATA} (set CTSTUDIO_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must run the real-data tests")
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def phantom():
    from ctstudio.imaging.phantom import head_phantom

    return head_phantom()


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on a shared 2-core CPU two threads thrash (4x slower here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def phantom_file(tmp_path_factory):
    """A small noisy head phantom (12 x 32 x 32) written as NIfTI: training data for tiny runs."""
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    p = tmp_path_factory.mktemp("data") / "phantom.nii.gz"
    write_volume(head_phantom(shape=(12, 32, 32), noise_sd=10.0, seed=0), p)
    return p
