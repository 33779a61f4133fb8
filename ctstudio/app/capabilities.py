"""What this copy of ctstudio can do: the reader-only bundle has no torch, so it has no models.

The model tabs (Generate, Convert, Calibrate, Train) call :func:`has_models` when they are built and,
when it is False, show :data:`NO_MODELS_TEXT` instead of their controls, so a reader workstation says
plainly why there is nothing to run rather than failing on the first click.
"""

from __future__ import annotations

import functools
import importlib.util

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
