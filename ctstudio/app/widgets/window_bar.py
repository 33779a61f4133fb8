"""WindowBar: CT window presets and level/width spin boxes bound to a ViewerState."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from ctstudio.app.widgets.state import ViewerState
from ctstudio.imaging.window import PRESETS, preset

#: The number key of each preset, in PRESETS order: 1..9 then 0 (the 11th has no key).
PRESET_KEYS: dict[str, str] = {name: str((n + 1) % 10) for n, name in enumerate(list(PRESETS)[:10])}


def preset_actions(parent, state: ViewerState) -> QActionGroup:
    """One checkable QAction per preset (with its number-key shortcut), for a menu."""
    group = QActionGroup(parent)
    group.setExclusive(True)
    for name, w in PRESETS.items():
        key = PRESET_KEYS.get(name)
        act = QAction(f"{name}  (L{w.level:g} W{w.width:g})", parent)
        act.setCheckable(True)
        act.setData(name)
        if key is not None:
            act.setShortcut(QKeySequence(key))
        act.triggered.connect(lambda _=False, n=name: state.set_window(preset(n)))
        group.addAction(act)

    def sync(window) -> None:
        for act in group.actions():
            act.setChecked(act.data() == window.name)

    state.windowChanged.connect(sync)
    sync(state.window)
    return group


class WindowBar(QWidget):
    """Preset chooser plus level/width in HU; edits go to the state, state changes come back."""

    def __init__(self, state: ViewerState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Window"))
        self.combo = QComboBox()
        self.combo.addItem("custom", "")
        for name, w in PRESETS.items():
            key = PRESET_KEYS.get(name)
            self.combo.addItem(f"{name} {w.level:g}/{w.width:g}" + (f"  [{key}]" if key else ""), name)
        self.combo.setToolTip("CT window presets (number keys 1-9, 0)")
        lay.addWidget(self.combo)
        self.level = QDoubleSpinBox()
        self.width_box = QDoubleSpinBox()
        for box, lo, hi, label in ((self.level, -4000, 6000, "L"), (self.width_box, 1, 10000, "W")):
            box.setRange(lo, hi)
            box.setDecimals(1)
            box.setKeyboardTracking(False)
            box.setSuffix(" HU")
            lay.addWidget(QLabel(label))
            lay.addWidget(box)
        self.combo.activated.connect(self._on_combo)
        self.level.valueChanged.connect(self._on_spin)
        self.width_box.valueChanged.connect(self._on_spin)
        state.windowChanged.connect(self._sync)
        self._sync(state.window)

    def _on_combo(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name:
            self.state.set_window(preset(name))

    def _on_spin(self, _value) -> None:
        self.state.set_level_width(self.level.value(), self.width_box.value())

    def _sync(self, window) -> None:
        with QSignalBlocker(self.level), QSignalBlocker(self.width_box), QSignalBlocker(self.combo):
            self.level.setValue(window.level)
            self.width_box.setValue(window.width)
            idx = self.combo.findData(window.name) if window.name else 0
            self.combo.setCurrentIndex(max(idx, 0))
