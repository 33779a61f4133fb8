"""Fuzzing in the suite: a fixed-seed set of mutated real files (bench/fuzz.py's harness, hypothesis-drawn
plans) through every reader, the study spec parser, the study database opener and the model loader; each
input opens into a valid result or raises a ctstudio error, in a worker with a 10 s limit and a bounded
address space. Plus regressions of what the fuzzer found in io/."""

import importlib.util
import sys
from pathlib import Path

import pytest

from ctstudio.errors import NotAnImageError, VolumeReadError
from ctstudio.io import read_volume, write_volume
from ctstudio.imaging.phantom import head_phantom

ROOT = Path(__file__).resolve().parents[2]
PER_TARGET = 40  # 7 targets: 280 inputs


def _bench():
    """bench/fuzz.py as a module (registered in sys.modules: its dataclasses need that)."""
    name = "ctstudio_bench_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "fuzz.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _set(path: Path, key: str, value: str, sep: str) -> None:
    data = path.read_bytes()
    path.write_bytes(_bench().text_header_field(data, key, value, sep))


def test_an_mha_declaring_100000_dimensions_is_refused_before_itk(tmp_path):
    """ITK crashed the process (SIGSEGV) on NDims = 100000 100000 100000."""
    p = write_volume(head_phantom((3, 8, 8)), tmp_path / "v.mha")
    _set(p, "NDims", "100000 100000 100000", " = ")
    with pytest.raises(NotAnImageError, match="NDims = '100000 100000 100000'; a CT image has 1 to 4"):
        read_volume(p)


def test_an_mha_whose_ndims_disagrees_with_dimsize_is_refused(tmp_path):
    p = write_volume(head_phantom((3, 8, 8)), tmp_path / "v.mha")
    _set(p, "NDims", "2", " = ")
    with pytest.raises(NotAnImageError, match="NDims = 2 but DimSize lists 3 sizes"):
        read_volume(p)


def test_an_mhd_naming_a_data_file_with_a_nul_byte_is_a_ctstudio_error(tmp_path):
    """os.stat raised a bare ValueError ('embedded null byte')."""
    p = write_volume(head_phantom((3, 8, 8)), tmp_path / "v.mha")
    p.write_bytes(p.read_bytes().replace(b"ElementDataFile = LOCAL", b"ElementDataFile = a\0b.raw\nX = LOCAL"))
    with pytest.raises(NotAnImageError, match="named in the header is missing or unreadable"):
        read_volume(p)


def test_an_nrrd_with_an_unparsable_byte_skip_is_a_ctstudio_error(tmp_path):
    """integrity.py raised a bare ValueError on 'byte skip: 4 4 4'."""
    p = write_volume(head_phantom((3, 8, 8)), tmp_path / "v.nrrd")
    _set(p, "byte skip", "4 4 4", ": ")
    with pytest.raises(NotAnImageError):
        read_volume(p)


def test_a_declared_100000_cubed_nrrd_is_refused_without_allocating(tmp_path):
    p = write_volume(head_phantom((3, 8, 8)), tmp_path / "v.nrrd")
    _set(p, "sizes", "100000 100000 100000", ": ")
    with pytest.raises(VolumeReadError, match="header is probably damaged"):
        read_volume(p)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    bench = _bench()
    fz = bench.Fuzzer(tmp_path_factory.mktemp("fuzz"))
    yield bench, fz
    fz.runner.close()


@pytest.mark.parametrize("target", ["nifti", "mha", "nrrd", "dicom", "spec", "store", "model"])
def test_fixed_seed_fuzzing_finds_no_crash(fuzzer, target):
    bench, fz = fuzzer
    before = len(fz.tally.crashes), fz.tally.tried
    bench.fuzz_target(fz, target, PER_TARGET, seed=16)
    assert fz.tally.tried - before[1] == PER_TARGET
    assert fz.tally.crashes[before[0]:] == []
