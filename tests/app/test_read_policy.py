"""The window opens a DICOM series with gantry tilt and uneven spacing the way the command line does: it asks
(resample, recommended / as acquired), remembers the choice when told to, and shows what was done (issue 16)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ctstudio.io import ReadPolicy, read_volume, write_volume
from ctstudio.volume import Volume

from tests.app.conftest import open_and_wait


@pytest.fixture(scope="module")
def tilted_uneven(tmp_path_factory):
    """A series written by ctstudio's own DICOM writer, then tilted 15 degrees with one slice spacing doubled."""
    d = tmp_path_factory.mktemp("tilted") / "series"
    k, j, i = np.meshgrid(np.arange(12), np.arange(24), np.arange(20), indexing="ij")
    write_volume(Volume.from_hu(100 + 5 * k + 2 * j + i, spacing=(1.0, 1.0, 2.0)), d, format="dicom")
    files = sorted(d.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
    t = np.radians(15.0)
    z = 0.0
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        z += 0.0 if n == 0 else (4.0 if n == 6 else 2.0)  # uneven: one step of 4 mm
        ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(t)), float(-np.sin(t))]
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.GantryDetectorTilt = "15.0"
        ds.save_as(f)
    return d


def _answer(mw, policy, remember=False):
    asked = []

    def ask(path, message):
        asked.append(message)
        return policy, remember

    mw.ask_read_policy = ask
    return asked


def test_the_default_choice_resamples_like_the_cli(qtbot, main_window, tilted_uneven):
    with pytest.raises(Exception, match="--tilt|--spacing"):
        read_volume(tilted_uneven)  # the command line's default refuses and says how to open it
    asked = _answer(main_window, ReadPolicy.resample())
    vol = open_and_wait(qtbot, main_window, tilted_uneven)
    assert len(asked) == 1 and ("tilt" in asked[0] or "spacing" in asked[0])
    ref = read_volume(tilted_uneven, tilt="resample", spacing="resample")
    assert vol.shape == ref.shape and np.array_equal(vol.array, ref.array)
    assert np.allclose(vol.origin, ref.origin) and np.allclose(vol.spacing, ref.spacing)
    assert "RESAMPLED" in main_window.volume_info.text()
    assert main_window.read_policy is None  # not remembered: the next irregular series asks again


def test_as_acquired_is_remembered_for_the_session(qtbot, main_window, tilted_uneven):
    asked = _answer(main_window, ReadPolicy.as_acquired(), remember=True)
    vol = open_and_wait(qtbot, main_window, tilted_uneven)
    ref = read_volume(tilted_uneven, tilt="as-acquired", spacing="as-acquired")
    assert np.array_equal(vol.array, ref.array) and vol.shape == (12, 24, 20)
    assert "AS ACQUIRED" in main_window.volume_info.text()
    assert main_window.read_policy == ReadPolicy.as_acquired()
    open_and_wait(qtbot, main_window, tilted_uneven)
    assert len(asked) == 1  # the second open used the remembered choice


def test_cancelling_the_dialog_opens_nothing(qtbot, main_window, tilted_uneven):
    _answer(main_window, None)
    main_window.open_path(tilted_uneven)
    qtbot.waitUntil(lambda: "cancelled" in main_window.statusBar().currentMessage(), timeout=30000)
    assert main_window.volume is None and main_window.error_box is None
