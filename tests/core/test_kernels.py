"""Kernel conversion of a volume: batching, progress, cancel, provenance, model-file errors."""

import numpy as np
import pytest
import torch

from ctstudio.errors import Cancelled, InputError, ModelError
from ctstudio.models.stargan import StarGenerator
from ctstudio.translation.kernels import KernelConverter, convert_volume
from ctstudio.volume import Metadata, Volume


@pytest.fixture
def small_volume():
    rng = np.random.default_rng(0)
    arr = rng.integers(-1024, 1500, size=(5, 30, 26)).astype(np.int16)  # not multiples of 4
    return Volume(arr, spacing=(0.5, 0.5, 1.0), metadata=Metadata(kernel="UB"))


@pytest.fixture
def identity_converter():
    G = StarGenerator(2, conv_dim=4, n_res=1, residual=True)  # the identity until trained
    return KernelConverter(G, ["UB", "YA"], name="test-ggcl", version="0")


def test_conversion_keeps_geometry_and_records_provenance(small_volume, identity_converter):
    events = []
    out = identity_converter.convert(small_volume, "YA", batch_size=2, callback=events.append)
    assert out.shape == small_volume.shape and out.spacing == small_volume.spacing
    assert np.array_equal(out.array, small_volume.array)  # identity network, odd sizes padded and cropped
    assert [e["done"] for e in events] == [2, 4, 5] and [e["first"] for e in events] == [0, 2, 4]
    assert out.metadata.kernel == "YA"
    assert out.provenance.synthetic and out.provenance.model == "test-ggcl"
    assert out.provenance.parameters["target_kernel"] == "YA"
    assert out.provenance.parameters["source_kernel"] == "UB"


def test_target_is_checked_and_cancel_stops_between_batches(small_volume, identity_converter):
    with pytest.raises(InputError, match="UB, YA"):
        identity_converter.convert(small_volume, "B70f")
    calls = []
    with pytest.raises(Cancelled):
        identity_converter.convert(small_volume, "ya", batch_size=1, callback=calls.append,
                                   cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2


def test_the_target_domain_changes_the_output(small_volume):
    torch.manual_seed(0)
    G = StarGenerator(2, conv_dim=4, n_res=1, residual=False)
    conv = KernelConverter(G, ["UB", "YA"])
    a = conv.convert(small_volume, "UB").array
    b = conv.convert(small_volume, "YA").array
    assert not np.array_equal(a, b)


def test_model_file_round_trip_and_clear_errors(tmp_path, small_volume):
    from ctstudio import checkpoints

    G = StarGenerator(2, conv_dim=4, n_res=1, residual=True)
    cfg = {"domains": ["UB", "YA"], "g_conv_dim": 4, "g_repeat": 1, "residual": True,
           "hu_range": {"lower": -1024, "upper": 3071}}
    checkpoints.save_model(tmp_path, "k", "ggcl", {"G": G}, cfg, {})
    out = convert_volume(small_volume, tmp_path / "k.safetensors", "YA")
    assert out.provenance.model == "k"
    # mismatched config: the weights do not fit the network
    checkpoints.save_model(tmp_path, "bad", "ggcl", {"G": G}, {**cfg, "g_conv_dim": 8}, {})
    with pytest.raises(ModelError, match="do not fit"):
        KernelConverter.load(tmp_path / "bad.safetensors")
    # the wrong kind of model
    checkpoints.save_model(tmp_path, "other", "cgan", {"G": G}, cfg, {})
    with pytest.raises(ModelError, match="'cgan' model"):
        KernelConverter.load(tmp_path / "other.safetensors")
    # an incomplete config
    checkpoints.save_model(tmp_path, "nocfg", "ggcl", {"G": G}, {"domains": ["UB", "YA"]}, {})
    with pytest.raises(ModelError, match="incomplete"):
        KernelConverter.load(tmp_path / "nocfg.safetensors")
    # a truncated weights file
    data = (tmp_path / "k.safetensors").read_bytes()
    (tmp_path / "k.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="malformed"):
        KernelConverter.load(tmp_path / "k.safetensors")
