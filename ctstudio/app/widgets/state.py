"""The shared state of linked slice views: cursor, window, thick slab.

Views subscribe to one :class:`ViewerState` (model emits, views redraw -- napari's dims/qt_dims
split). Linking views (the three planes; A, B and A - B in compare mode) is sharing one state.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ctstudio.imaging.window import PRESETS, Window


class ViewerState(QObject):
    #: canonical cursor (s, p, l) -- see :mod:`ctstudio.imaging.display_geometry`
    cursorChanged = Signal(tuple)
    windowChanged = Signal(object)
    #: (mode, thickness_mm); mode in none / mip / minip / mean
    slabChanged = Signal(str, float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._shape: tuple[int, int, int] = (1, 1, 1)
        self._cursor: tuple[int, int, int] = (0, 0, 0)
        self._window: Window = PRESETS["soft-tissue"]
        self._slab: tuple[str, float] = ("none", 0.0)

    # -- shape / cursor ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def set_shape(self, shape, cursor=None) -> None:
        """A new volume: clamp (or set) the cursor and tell the views."""
        self._shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
        target = cursor if cursor is not None else tuple(s // 2 for s in self._shape)
        self._cursor = self._clamp(target)
        self.cursorChanged.emit(self._cursor)

    def _clamp(self, cursor) -> tuple[int, int, int]:
        return tuple(min(max(int(c), 0), n - 1) for c, n in zip(cursor, self._shape))  # type: ignore[return-value]

    @property
    def cursor(self) -> tuple[int, int, int]:
        return self._cursor

    def set_cursor(self, cursor) -> None:
        new = self._clamp(cursor)
        if new != self._cursor:
            self._cursor = new
            self.cursorChanged.emit(new)

    def step(self, axis: int, delta: int) -> None:
        cur = list(self._cursor)
        cur[axis] += int(delta)
        self.set_cursor(cur)

    # -- window -----------------------------------------------------------------------------------
    @property
    def window(self) -> Window:
        return self._window

    def set_window(self, window: Window) -> None:
        if (window.level, window.width, window.name) != (self._window.level, self._window.width, self._window.name):
            self._window = window
            self.windowChanged.emit(window)

    def set_level_width(self, level: float, width: float) -> None:
        """A manual window (drops the preset name unless the values are exactly a preset's)."""
        width = max(1.0, float(width))
        name = next((n for n, w in PRESETS.items() if w.level == level and w.width == width), "")
        self.set_window(Window(float(level), width, name))

    # -- slab -------------------------------------------------------------------------------------
    @property
    def slab(self) -> tuple[str, float]:
        return self._slab

    def set_slab(self, mode: str, thickness_mm: float) -> None:
        mode = mode.lower()
        if mode not in ("none", "mip", "minip", "mean"):
            raise ValueError(f"unknown slab mode {mode!r}")
        new = (mode, max(0.0, float(thickness_mm)))
        if new != self._slab:
            self._slab = new
            self.slabChanged.emit(*new)
