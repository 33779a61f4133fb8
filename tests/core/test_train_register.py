"""Registering a trained model (pipelines/register.py, ``ctstudio models add``): a run's final model copied into
the user models folder with its card, listed at once, never replacing a model without being asked."""

import json

import pytest

from ctstudio import checkpoints
from ctstudio.errors import InputError, ModelError
from ctstudio.jobs import run_job
from ctstudio.pipelines.register import register_model
from ctstudio.pipelines.train import TrainRequest, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, phantom_file):
    out = tmp_path_factory.mktemp("runs") / "run"
    run_job(train(TrainRequest(kind="icnet", data=phantom_file, out=out, config="tiny", device="cpu", steps=3,
                               log_every=1)))
    return out


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("CTSTUDIO_MODELS", str(d))
    return d


def test_a_finished_run_is_registered_and_listed_with_its_card(finished_run, models_dir):
    path = register_model(finished_run)
    assert path == models_dir / "icnet-tiny.safetensors"
    assert path.read_bytes() == (finished_run / "icnet-tiny.safetensors").read_bytes()  # the same weights
    listed = [m for m in checkpoints.list_models() if m["source"] == "user"]
    assert [(m["name"], m["kind"]) for m in listed] == [("icnet-tiny", "icnet")]
    card = checkpoints.read_meta(path)["card"]
    events = [json.loads(line) for line in (finished_run / "events.jsonl").read_text().splitlines()]
    last = [e for e in events if e["stage"] == "step"][-1]
    assert card["last_losses"] == {"step": 3, "loss": last["loss"]}
    assert card["steps"] == 3 and "machine" in card and card["data"]["files"]
    assert card["registered"]["from"] == str(finished_run)
    meta, tensors = checkpoints.load_model("icnet-tiny", kind="icnet")  # loads by name, weights checked
    assert meta["name"] == "icnet-tiny" and tensors


def test_an_existing_model_is_replaced_only_when_asked(finished_run, models_dir):
    register_model(finished_run)
    before = (models_dir / "icnet-tiny.json").read_text()
    with pytest.raises(InputError, match="exists already"):
        register_model(finished_run)
    assert (models_dir / "icnet-tiny.json").read_text() == before
    register_model(finished_run, overwrite=True)
    renamed = register_model(finished_run / "icnet-tiny.safetensors", name="mine")
    assert checkpoints.read_meta(renamed)["name"] == "mine"
    assert sorted(m["name"] for m in checkpoints.list_models() if m["source"] == "user") == ["icnet-tiny", "mine"]


def test_what_cannot_be_registered_is_refused_with_a_reason(finished_run, models_dir, tmp_path):
    bundled = next(iter(m["name"] for m in checkpoints.list_models() if m["source"] == "bundled"))
    with pytest.raises(InputError, match="bundled"):
        register_model(finished_run, name=bundled)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(InputError, match="no finished model"):
        register_model(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    for suffix in (".safetensors", ".json"):
        (bad / f"m{suffix}").write_bytes((finished_run / f"icnet-tiny{suffix}").read_bytes())
    data = bytearray((bad / "m.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one weight byte changed: no longer the file the JSON records
    (bad / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not the one"):
        register_model(bad / "m.safetensors")
    assert not models_dir.exists() or not list(models_dir.iterdir())
