"""What this copy of ctstudio can do: the reader-only bundle has no torch, so it has no models.

In a copy without models, the model tabs (:data:`MODEL_TABS`) show :func:`no_models_tab` instead of
their controls, so a reader workstation says plainly why there is nothing to run rather than failing
on the first click (or showing "not built yet"). One check where the window builds its tabs does it::

    if title in MODEL_TABS and not has_models():
        self.tabs.addTab(no_models_tab(title), title)
        continue
"""

from __future__ import annotations

import functools
import importlib.util

#: The tabs that need the models (torch); the Viewer, Study and Results tabs do not.
MODEL_TABS = frozenset({"Generate", "Convert", "Calibrate", "Train"})

#: What a model tab shows in a build without models (plain words for a radiologist).
NO_MODELS_TEXT = ("This is the reader-only build of ctstudio: it has no models, so it cannot generate, convert, "
                  "calibrate or train. The Viewer, Study and Results tabs work as usual. Install the full "
                  "ctstudio build to use the models.")


@functools.cache
def has_models() -> bool:
    """True when torch can be imported here (the full build or a source install), else False.

    Looks torch up without importing it (importing torch takes seconds), so tabs may call this while
    the window is being built.
    """
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def no_models_tab(title: str):
    """The page a model tab shows in a build without models: its title and :data:`NO_MODELS_TEXT`."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    page = QWidget()
    page.setObjectName(f"no-models-{title.lower()}")
    label = QLabel(f"<h3>{title}: no models in this build</h3><p>{NO_MODELS_TEXT}</p>")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    QVBoxLayout(page).addWidget(label)
    return page
