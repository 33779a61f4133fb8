"""Outputs never destroy work: every command that writes refuses an existing output without --overwrite and
never writes onto its own input (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.cli import main


@pytest.fixture
def small(tmp_path, sample_path):
    from ctstudio.io import read_volume, write_volume

    v = read_volume(sample_path)
    path = tmp_path / "small.nii.gz"
    write_volume(v.with_array(np.ascontiguousarray(v.array[20:28])), path)
    return path


def _bytes(p):
    return p.read_bytes()


@pytest.mark.parametrize("command", [
    ["calibrate", "{src}", "--method", "histogram", "--quiet", "-o"],
    ["convert", "{src}", "--model", "ggcl-phantom-ub-ya", "--target", "YA", "--quiet", "-o"],
    ["export", "{src}"],
])
def test_a_command_never_writes_onto_its_input(command, small, capsys):
    before = _bytes(small)
    argv = [a.replace("{src}", str(small)) for a in command] + [str(small)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "would overwrite an input" in err and str(small) in err
    assert main(argv + ["--overwrite"]) == 2  # not even with --overwrite
    assert _bytes(small) == before


@pytest.mark.parametrize("command", [
    ["calibrate", "{src}", "--method", "histogram", "--quiet", "-o", "{out}"],
    ["convert", "{src}", "--model", "ggcl-phantom-ub-ya", "--target", "YA", "--quiet", "-o", "{out}"],
    ["export", "{src}", "{out}"],
    ["generate", "--slices", "1", "--steps", "1", "--no-icnet", "--quiet", "-o", "{out}"],
])
def test_an_existing_output_is_kept_unless_overwrite(command, small, tmp_path, capsys):
    out = tmp_path / "work.nii.gz"
    out.write_bytes(b"a user's finished work")
    argv = [a.replace("{src}", str(small)).replace("{out}", str(out)) for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the output file exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"a user's finished work"
    assert main(argv + ["--overwrite"]) == 0
    from ctstudio.io import read_volume

    assert read_volume(out).shape[1:] in ((64, 64),)


def test_export_refuses_an_existing_dicom_folder_with_the_flag_it_has(small, tmp_path, capsys):
    out = tmp_path / "series"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["export", str(small), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").exists()
