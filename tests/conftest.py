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
