"""The models panel shared by the model tabs: lists bundled and user models, shows the card, loads off the
UI thread, and turns every unusable file into a message in the panel while the other models still load."""

from __future__ import annotations

import json

import pytest

from generate_helpers import save_tiny_score_model


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("CTSTUDIO_MODELS", str(folder))
    return folder


def _panel(qtbot, main_window, kinds=("score",)):
    from ctstudio.app.widgets.models_panel import ModelsPanel

    panel = ModelsPanel(main_window, kinds=kinds)
    qtbot.addWidget(panel)
    return panel


def _names(panel):
    return [e.name for e in panel.entries]


def _load(qtbot, panel, name):
    assert panel.select(name)
    loaded, failed = [], []
    panel.model_loaded.connect(loaded.append)
    panel.load_failed.connect(failed.append)
    panel.load_selected()
    qtbot.waitUntil(lambda: bool(loaded or failed), timeout=60000)
    return loaded, failed


def test_bundled_demo_listed_with_its_card_and_demo_mark(qtbot, main_window, user_models):
    panel = _panel(qtbot, main_window)
    assert "score-k2-demo" in _names(panel)
    assert "icnet-demo" not in _names(panel), "a score-model tab lists only score models"
    panel.select("score-k2-demo")
    text = panel.card.toPlainText()
    assert "DEMO MODEL" in text and "64x64" in text and "[-1024, 3071]" in text
    assert "VTK headsq" in text and "licence" in text.lower()
    assert "DEMO" in panel.list.currentItem().text()
    both = _panel(qtbot, main_window, kinds=("score", "icnet"))
    assert {"score-k2-demo", "icnet-demo"} <= set(_names(both))


def test_bad_files_show_their_error_and_the_good_model_still_loads(qtbot, main_window, user_models):
    save_tiny_score_model(user_models, "good")
    st = save_tiny_score_model(user_models, "truncated")
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    st2 = save_tiny_score_model(user_models, "nojson")
    st2.with_name("nojson.json").unlink()
    bad_json = save_tiny_score_model(user_models, "badjson")
    bad_json.with_name("badjson.json").write_text("{not json")
    shapes = save_tiny_score_model(user_models, "shapes")
    js = shapes.with_name("shapes.json")
    meta = json.loads(js.read_text())
    meta["config"]["unet"]["base_channels"] = 8  # the weights were made for 16 channels
    js.write_text(json.dumps(meta))
    panel = _panel(qtbot, main_window)
    errors = {e.name: e.error for e in panel.entries}
    assert errors["good"] == ""
    assert "malformed" in errors["truncated"] and "truncated.safetensors" in errors["truncated"]
    assert "JSON file is missing" in errors["nojson"]
    assert "cannot be read" in errors["badjson"]
    assert "cannot be used" in panel.list.item(_names(panel).index("truncated")).text()
    panel.select("truncated")
    assert "malformed" in panel.message.text() and not panel.load_button.isEnabled()
    assert panel.load_selected() is None
    # incompatible shapes only show when the weights meet the network: a message, no crash
    loaded, failed = _load(qtbot, panel, "shapes")
    assert not loaded and "do not fit the network" in failed[0]
    assert "do not fit" in panel.message.text() and "cannot be used" in panel.list.currentItem().text()
    loaded, failed = _load(qtbot, panel, "good")
    assert not failed and loaded[0].name == "good" and loaded[0].kind == "score"
    assert panel.loaded is loaded[0]


def test_a_model_is_loaded_once_and_reused(qtbot, main_window, user_models):
    save_tiny_score_model(user_models, "good")
    panel = _panel(qtbot, main_window)
    first, _ = _load(qtbot, panel, "good")
    second, _ = _load(qtbot, panel, "good")
    assert first[0] is second[0], "the same file on the same device must come from the cache"


def test_add_model_file_checks_copies_and_asks_before_replacing(qtbot, main_window, user_models, tmp_path):
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    st = save_tiny_score_model(elsewhere, "mine")
    panel = _panel(qtbot, main_window)
    assert "mine" not in _names(panel)
    new = panel.add_model(st.with_name("mine.json"))
    assert new == user_models / "mine.safetensors" and (user_models / "mine.json").is_file()
    assert new.read_bytes() == st.read_bytes()
    assert panel.selected_entry().name == "mine"
    # the same name again: asked, refused -> nothing replaced
    asked = []
    panel.confirm_replace = lambda name: asked.append(name) or False
    before = (user_models / "mine.json").read_text()
    save_tiny_score_model(elsewhere, "mine", image_size=8)
    assert panel.add_model(elsewhere / "mine.safetensors") is None
    assert asked == ["mine"] and (user_models / "mine.json").read_text() == before
    assert "exists" in panel.message.text()
    panel.confirm_replace = lambda name: True
    assert panel.add_model(elsewhere / "mine.safetensors") is not None
    assert json.loads((user_models / "mine.json").read_text())["config"]["image_size"] == 8
    # a lone weights file, a corrupt file and another kind are refused with their message
    lone = elsewhere / "lone.safetensors"
    lone.write_bytes(st.read_bytes())
    assert panel.add_model(lone) is None and "JSON file is missing" in panel.message.text()
    icnet = _panel(qtbot, main_window, kinds=("icnet",))
    assert icnet.add_model(st) is None and "this tab takes IC-Net" in icnet.message.text()
    assert not (user_models / "lone.safetensors").exists()


def test_devices_listed_off_the_ui_thread(qtbot, main_window, user_models):
    panel = _panel(qtbot, main_window)
    got = []
    panel.devices_ready.connect(got.append)
    panel.probe_devices()
    qtbot.waitUntil(lambda: bool(got), timeout=60000)
    assert got[0][0] == "auto" and got[0][-1] == "cpu"
    assert [panel.device_combo.itemText(i) for i in range(panel.device_combo.count())] == got[0]
    assert panel.device() == "auto"
