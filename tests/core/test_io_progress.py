"""read_volume reports progress in the one ctstudio.jobs event schema and stops on a cancel token,
for every format (the window's loader shows these events and cancels a stale load)."""

from __future__ import annotations

import pytest

from ctstudio.errors import Cancelled
from ctstudio.io import read_volume
from ctstudio.jobs import CancelToken, validate_event

from test_io_helpers import tiny_volume, write_series


def test_nifti_read_reports_one_read_and_done_event(sample_path):
    events = []
    vol = read_volume(sample_path, callback=events.append)
    for e in events:
        validate_event(e)
    assert [(e["job"], e["stage"], e["done"], e["total"], e["unit"]) for e in events] == [
        ("load", "read", 0, 1, "file"), ("load", "done", 1, 1, "file")]
    assert events[-1]["shape"] == vol.shape


def test_cancelled_nifti_read_raises_cancelled(sample_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        read_volume(sample_path, cancel=token)


def test_dicom_cancel_stops_between_files(tmp_path):
    """The token is set from the callback after the 3rd file of the folder scan: no further file is read."""
    files = write_series(tmp_path / "s", tiny_volume())
    token, events = CancelToken(), []

    def on_event(e):
        events.append(e)
        if e["done"] == 2:
            token.cancel()

    with pytest.raises(Cancelled, match="3 of 8 files"):
        read_volume(tmp_path / "s", callback=on_event, cancel=token)
    assert [e["done"] for e in events] == [0, 1, 2] and len(files) == 8


def test_dicom_cancel_during_the_pixel_pass(tmp_path):
    write_series(tmp_path / "s", tiny_volume())
    token, stages = CancelToken(), []

    def on_event(e):
        stages.append(e["stage"])
        if e["stage"] == "read":
            token.cancel()

    with pytest.raises(Cancelled, match="reading the pixels \\(1 of 8 files\\)"):
        read_volume(tmp_path / "s", callback=on_event, cancel=token)
    assert stages == ["scan"] * 8 + ["read"]


def test_single_dicom_file_counts_one_file(tmp_path):
    f = write_series(tmp_path / "s", tiny_volume())[0]
    events = []
    read_volume(f, callback=events.append)
    assert [(e["stage"], e["done"], e["total"]) for e in events] == [("read", 0, 1), ("done", 1, 1)]
