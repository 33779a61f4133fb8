"""Model files: safetensors + JSON, clear errors, the registry."""

import json

import pytest
import torch

from ctstudio import checkpoints
from ctstudio.errors import ModelError
from ctstudio.models.icnet import ICNet, ICNetConfig


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("CTSTUDIO_MODELS", str(d))
    return d


def _save(d, name="m1", kind="icnet", cfg=ICNetConfig.tiny()):
    net = ICNet(cfg)
    torch.nn.init.normal_(net.conv_out.weight)
    path = checkpoints.save_model(d, name, kind, {"net": net}, {"net": cfg.to_dict()}, {"summary": "test model"})
    return net, path


def test_round_trip_keeps_every_tensor_and_the_json(tmp_path):
    net, path = _save(tmp_path)
    assert path.name == "m1.safetensors" and (tmp_path / "m1.json").exists()
    meta, tensors = checkpoints.load_model(path)
    assert meta["kind"] == "icnet" and meta["card"]["summary"] == "test model"
    net2 = ICNet(ICNetConfig.from_dict(meta["config"]["net"]))
    checkpoints.load_into(net2, tensors, "net")
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert torch.equal(a, b), k
    # the file is plain safetensors: no pickle anywhere
    assert path.read_bytes()[:8] != b"\x80\x04\x95"


def test_missing_json_is_a_clear_error(tmp_path):
    _, path = _save(tmp_path)
    (tmp_path / "m1.json").unlink()
    with pytest.raises(ModelError, match="JSON file is missing"):
        checkpoints.load_model(path)


def test_truncated_weights_are_a_clear_error(tmp_path):
    _, path = _save(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="malformed"):
        checkpoints.load_model(path)


def test_malformed_json_is_a_clear_error(tmp_path):
    _, path = _save(tmp_path)
    (tmp_path / "m1.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        checkpoints.load_model(path)


def test_wrong_kind_is_refused(tmp_path):
    _, path = _save(tmp_path)
    with pytest.raises(ModelError, match="'icnet' model, but a 'score' model is needed"):
        checkpoints.load_model(path, kind="score")


def test_shape_mismatch_on_load_is_a_model_error(tmp_path):
    _, path = _save(tmp_path)
    meta, tensors = checkpoints.load_model(path)
    bigger = ICNet(ICNetConfig(base_channels=16, channel_mult=(1, 2)))
    with pytest.raises(ModelError, match="do not fit"):
        checkpoints.load_into(bigger, tensors, "net", path=path)


def test_registry_lists_user_models_and_resolves_names(user_dir):
    _save(user_dir, "mine")
    found = {m["name"]: m for m in checkpoints.list_models()}
    assert found["mine"]["kind"] == "icnet" and found["mine"]["source"] == "user"
    assert checkpoints.resolve_model("mine") == user_dir / "mine.safetensors"
    with pytest.raises(ModelError, match="no model named 'nope'"):
        checkpoints.resolve_model("nope")


def test_bundled_demo_models_are_listed_with_cards():
    found = {m["name"]: m for m in checkpoints.list_models() if m["source"] == "bundled"}
    assert found["score-k2-demo"]["kind"] == "score"
    assert found["icnet-demo"]["kind"] == "icnet"
    for name in ("score-k2-demo", "icnet-demo"):
        meta = checkpoints.read_meta(found[name]["path"])
        card = meta["card"]
        assert "demo" in card["summary"].lower() and "licence" in json.dumps(card).lower()
        assert card["steps"] > 0 and card["train_wall_s"] > 0


def test_new_weights_beside_the_old_json_load_the_old_model_kept_aside(tmp_path):
    """A save interrupted between its two renames (weights renamed, JSON not yet): the old JSON finds the old
    weights kept as NAME.safetensors.prev; without them the pair is refused, never loaded mixed."""
    import os

    import torch

    from ctstudio import checkpoints
    from ctstudio.errors import ModelError

    old = {"w": torch.zeros(3)}
    checkpoints.save_model(tmp_path, "m", "icnet", {"net": old}, {"a": 1}, {})
    st = tmp_path / "m.safetensors"
    os.link(st, tmp_path / "m.safetensors.prev")  # what save_tensors_json keeps before replacing the weights
    from safetensors.torch import save

    st.unlink()
    st.write_bytes(save({"net.w": torch.ones(3)}))  # the new weights, the JSON still the old one's
    meta, tensors = checkpoints.load_model(st)
    assert torch.equal(tensors["net.w"], torch.zeros(3))
    (tmp_path / "m.safetensors.prev").unlink()
    with pytest.raises(ModelError, match="different saves"):
        checkpoints.load_model(st)
    # a complete save afterwards leaves no .prev behind
    checkpoints.save_model(tmp_path, "m", "icnet", {"net": {"w": torch.ones(3)}}, {"a": 1}, {})
    assert torch.equal(checkpoints.load_model(st)[1]["net.w"], torch.ones(3))
    assert not (tmp_path / "m.safetensors.prev").exists()
