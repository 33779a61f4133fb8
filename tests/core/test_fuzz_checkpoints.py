"""Model files validated before use: the safetensors header against the file (lengths, offsets, dtype x
shape = bytes, no gaps), the JSON's field types; never unpickled, a declared huge tensor never allocated.
Every case is a ModelError whose message names the file."""

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest

from ctstudio import checkpoints
from ctstudio.errors import ModelError
from ctstudio.pipelines.models import clear_cache, load_model

DEMO = Path(checkpoints.BUNDLED_DIR)


@pytest.fixture
def model(tmp_path):
    for f in ("icnet-demo.json", "icnet-demo.safetensors"):
        shutil.copy(DEMO / f, tmp_path / f)
    clear_cache()
    return tmp_path / "icnet-demo.safetensors"


def _header(st: Path) -> tuple[dict, bytes]:
    data = st.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write(st: Path, header: dict, body: bytes) -> None:
    h = json.dumps(header).encode()
    st.write_bytes(struct.pack("<Q", len(h)) + h + body)


def _first(header: dict) -> str:
    return sorted(k for k in header if k != "__metadata__")[0]


def _refused(st: Path, match: str) -> ModelError:
    with pytest.raises(ModelError, match=match) as info:
        checkpoints.load_model(st)
    assert str(st.name) in str(info.value)
    return info.value


def test_the_intact_demo_model_loads(model):
    meta, tensors = checkpoints.load_model(model)
    assert meta["kind"] == "icnet" and tensors
    assert load_model(model, device="cpu").kind == "icnet"


def test_a_header_length_beyond_the_file_is_refused(model):
    data = model.read_bytes()
    model.write_bytes(struct.pack("<Q", len(data)) + data[8:])
    _refused(model, f"header declares {len(data)} bytes but the file has only {len(data) - 8}")


def test_a_file_shorter_than_the_length_field_is_refused(model):
    model.write_bytes(b"\x10\x00")
    _refused(model, "2 bytes, shorter than the 8-byte header length")


def test_a_declared_huge_tensor_is_refused_without_allocating_it(model):
    header, body = _header(model)
    name = _first(header)
    header[name]["shape"] = [100000, 100000, 100000]  # 4e15 bytes of F32 in a 470 kB file
    _write(model, header, body)
    _refused(model, r"declares shape \[100000, 100000, 100000\] of F32 \(4000000000000000 bytes\)")


def test_offsets_outside_the_data_are_refused(model):
    header, body = _header(model)
    name = _first(header)
    header[name]["data_offsets"] = [0, 10 ** 12]
    _write(model, header, body)
    _refused(model, f"lies at bytes 0..{10 ** 12}, outside the {len(body)} data bytes")


def test_a_dtype_that_does_not_match_the_byte_count_is_refused(model):
    header, body = _header(model)
    name = _first(header)
    assert header[name]["dtype"] == "F32"
    header[name]["dtype"] = "F64"
    _write(model, header, body)
    _refused(model, "of F64")


@pytest.mark.parametrize("field,value,match", [
    ("dtype", "X9", "unknown dtype"), ("shape", [-1], "invalid shape"), ("shape", "8", "invalid shape"),
    ("data_offsets", [0], "invalid data_offsets"), ("data_offsets", ["0", "4"], "invalid data_offsets"),
])
def test_malformed_tensor_entries_are_refused(model, field, value, match):
    header, body = _header(model)
    header[_first(header)][field] = value
    _write(model, header, body)
    _refused(model, match)


def test_overlapping_tensors_are_refused(model):
    header, body = _header(model)
    names = sorted(k for k in header if k != "__metadata__")
    a, b = names[0], names[1]
    header[b] = dict(header[a])  # b now claims a's bytes
    _write(model, header, body)
    _refused(model, "a gap or an overlap|cover")


def test_a_header_that_is_not_json_is_refused(model):
    data = model.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    model.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])
    _refused(model, "header is not JSON")


@pytest.mark.parametrize("field,value", [
    ("name", 5), ("kind", ["icnet"]), ("config", []), ("card", "a card"), ("version", "1"), ("version", True),
    ("version", 1.5), ("modules", "net"),
])
def test_json_fields_of_the_wrong_type_are_refused(model, field, value):
    js = model.with_suffix(".json")
    meta = json.loads(js.read_text())
    meta[field] = value
    js.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"field '{field}'") as info:
        checkpoints.load_model(model)
    assert "icnet-demo.json" in str(info.value)


def test_a_pickle_is_never_unpickled(model, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    model.write_bytes(pickle.dumps({"net.conv_in.bias": Payload()}))
    with pytest.raises(ModelError, match="malformed"):
        checkpoints.load_model(model)
    with pytest.raises(ModelError):
        load_model(model, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("channels", [-3, 10 ** 6])
def test_a_config_asking_for_an_impossible_network_is_a_model_error(model, channels):
    """The loader builds the network from the JSON config before the weights are fitted: a config asking for
    negative or 10^6 base channels (36 TB of weights) ends as a ModelError, not a RuntimeError."""
    js = model.with_suffix(".json")
    meta = json.loads(js.read_text())
    meta["config"]["net"]["base_channels"] = channels
    js.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="icnet-demo"):
        load_model(model, device="cpu")


def test_weights_from_another_save_beside_the_json_are_refused(tmp_path):
    """A crash between the two renames of a save leaves new weights beside the old JSON: refused, not loaded."""
    from ctstudio.models.icnet import ICNet, ICNetConfig

    cfg = ICNetConfig.tiny()
    net = ICNet(cfg)
    path = checkpoints.save_model(tmp_path, "m", "icnet", {"net": net}, {"net": cfg.to_dict()})
    old_json = (tmp_path / "m.json").read_bytes()
    meta, _ = checkpoints.load_model(path)
    assert meta["weights"]["bytes"] == path.stat().st_size
    import torch

    torch.nn.init.normal_(net.conv_out.weight)
    checkpoints.save_model(tmp_path, "m", "icnet", {"net": net}, {"net": cfg.to_dict()})
    (tmp_path / "m.json").write_bytes(old_json)  # as if killed after the weights' rename
    with pytest.raises(ModelError, match="not the one m.json was written with"):
        checkpoints.load_model(path)


def test_a_config_declaring_a_huge_network_allocates_nothing(tmp_path):
    """A JSON asking for a 10^6-channel IC-Net beside small weights: refused with a ModelError, and the network is
    built on the meta device (no memory), so the refusal costs nothing."""
    import json
    import resource

    from ctstudio import checkpoints
    from ctstudio.diffusion.loading import load_icnet
    from ctstudio.errors import ModelError

    st = checkpoints.resolve_model("icnet-demo")
    (tmp_path / "big.safetensors").write_bytes(st.read_bytes())
    meta = json.loads(st.with_suffix(".json").read_text())
    meta["config"]["net"]["base_channels"] = 100_000  # ~10^11 parameters: 400+ GB if it were allocated
    (tmp_path / "big.json").write_text(json.dumps(meta))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError):
        load_icnet(tmp_path / "big.safetensors")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: well under 0.5 GB
