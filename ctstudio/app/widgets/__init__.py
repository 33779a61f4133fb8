"""Reusable viewer widgets. Each takes a :class:`~ctstudio.volume.Volume` and knows nothing about
models or studies, so the study runner and the model tabs reuse them.

* :class:`SliceView` -- one plane (axial / coronal / sagittal) with crosshair, probe, W/L, slab;
* :class:`TriPlanar` -- three linked SliceViews + the optional 3D view + cine;
* :class:`CompareView` -- A | B | A - B, synced;
* :class:`WindowBar` -- CT window presets and level/width;
* :class:`ViewerState` -- the state linked views share (cursor, window, slab);
* ``volume3d.Volume3D`` -- VTK volume rendering (needs a real display; import it from its module).
"""

from ctstudio.app.widgets.compare import CompareView
from ctstudio.imaging.display_geometry import DisplayVolume
from ctstudio.app.widgets.slice_view import Bindings, SliceView
from ctstudio.app.widgets.state import ViewerState
from ctstudio.app.widgets.triplanar import TriPlanar
from ctstudio.app.widgets.window_bar import WindowBar

__all__ = ["Bindings", "CompareView", "DisplayVolume", "SliceView", "TriPlanar", "ViewerState", "WindowBar"]
