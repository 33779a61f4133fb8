"""The tab contract: a module in ctstudio/app/tabs/ is a tab; a broken one cannot take the window down."""

from __future__ import annotations

import sys

import ctstudio.app.tabs as tabs_pkg


def test_new_tab_module_is_discovered_and_broken_one_is_reported(qtbot, settings, tmp_path, monkeypatch):
    (tmp_path / "zz_extra.py").write_text(
        "from PySide6.QtWidgets import QLabel\n"
        "TITLE = 'Extra'\nORDER = 15\n"
        "class Tab(QLabel):\n"
        "    def __init__(self, main_window):\n"
        "        super().__init__('extra tab')\n"
        "        self.mw = main_window\n"
        "        self.activated = 0\n"
        "    def on_activated(self):\n"
        "        self.activated += 1\n")
    (tmp_path / "zz_broken.py").write_text("raise RuntimeError('boom in a tab module')\n")
    monkeypatch.setattr(tabs_pkg, "__path__", [*tabs_pkg.__path__, str(tmp_path)])
    try:
        from ctstudio.app.main_window import MainWindow

        mw = MainWindow(settings)
        qtbot.addWidget(mw)
        titles = [mw.tabs.tabText(i) for i in range(mw.tabs.count())]
        # ORDER 15 puts it between Viewer (10) and Generate (20)
        assert titles.index("Extra") == titles.index("Viewer") + 1
        extra = mw.tab("Extra")
        assert extra is not None and extra.mw is mw
        mw.tabs.setCurrentIndex(titles.index("Extra"))
        assert extra.activated == 1
        i = titles.index("Zz_broken")
        text = mw.tabs.widget(i).findChildren(type(mw.probe_label))[0].text()
        assert "failed to load" in text and "boom in a tab module" in text
        assert mw.tab("Viewer") is not None  # the rest of the window is fine
        mw.close()
    finally:
        for name in ("ctstudio.app.tabs.zz_extra", "ctstudio.app.tabs.zz_broken"):
            sys.modules.pop(name, None)


def test_a_build_without_models_says_so_in_every_model_tab(qtbot, settings, monkeypatch):
    """The reader-only bundle has no torch: the model tabs say plainly that this build has no models."""
    from ctstudio.app import capabilities
    from ctstudio.app.main_window import MainWindow

    monkeypatch.setattr(capabilities, "has_models", lambda: False)
    mw = MainWindow(settings)
    qtbot.addWidget(mw)
    titles = [mw.tabs.tabText(i) for i in range(mw.tabs.count())]
    for title in ("Generate", "Convert", "Calibrate", "Train"):
        page = mw.tabs.widget(titles.index(title))
        texts = " ".join(w.text() for w in page.findChildren(type(mw.volume_info)))
        assert "reader-only build" in texts and "no models" in texts, title
    assert mw.tab("Study") is not None and mw.tab("Viewer") is not None
