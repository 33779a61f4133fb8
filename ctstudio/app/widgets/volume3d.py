"""Volume3D: VTK volume rendering of a Volume with CT presets (bone, soft tissue, MIP).

The render pipeline (:func:`make_image_data`, :func:`apply_preset`, :func:`build_renderer`) is plain
VTK and can render offscreen to an array (:func:`render_to_array`, EGL, no X needed); the Qt widget
(:class:`Volume3D`) embeds it with ``QVTKRenderWindowInteractor``, which needs a real window
(xcb / Xvfb): it aborts under ``QT_QPA_PLATFORM=offscreen``, so :func:`can_embed_vtk` is checked first.

The volume is shown in patient orientation (from the canonical S/P/L view of
:class:`~ctstudio.imaging.display_geometry.DisplayVolume`): the default camera looks at the patient's
face (anterior view), superior up, patient left on screen right. Large volumes are subsampled
to at most ``max_dim`` voxels per axis so that rotation stays interactive on a CPU renderer.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QKeyCombination, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ctstudio.imaging.display_geometry import DisplayVolume
from ctstudio.volume import Volume

PRESETS_3D = ("bone", "soft tissue", "mip")


def _vtk():
    import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL render window)
    import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (GPU ray cast for the smart mapper)
    from vtkmodules import vtkCommonDataModel, vtkRenderingCore, vtkRenderingVolume  # noqa: F401

    return vtkCommonDataModel, vtkRenderingCore


def can_embed_vtk() -> bool:
    """Whether the Qt platform can host a VTK OpenGL widget (not 'offscreen' / 'minimal')."""
    from PySide6.QtGui import QGuiApplication

    return QGuiApplication.platformName() not in ("offscreen", "minimal", "")


def make_image_data(volume: Volume | DisplayVolume, max_dim: int = 192):
    """vtkImageData of the volume in canonical orientation (x = patient left, y = posterior, z = superior),
    placed at its patient position (LPS mm), subsampled to at most ``max_dim`` voxels per axis."""
    dm, _ = _vtk()
    img = dm.vtkImageData()
    update_image_data(img, volume, max_dim)
    return img


def update_image_data(img, volume: Volume | DisplayVolume, max_dim: int = 192) -> None:
    """Put ``volume`` into the existing vtkImageData ``img`` in place (what a renderer already shows).

    Same grid: the voxels are copied into the existing scalar array; a grown volume: the image gets the
    new dimensions and scalars. The image is placed at the patient position (LPS mm) of its first
    canonical voxel, so a volume grown on its inferior side stays where it was under the camera."""
    from vtkmodules.util import numpy_support
    from vtkmodules.util.vtkConstants import VTK_SHORT

    disp = volume if isinstance(volume, DisplayVolume) else DisplayVolume(volume)
    step = max(1, math.ceil(max(disp.shape) / max_dim))
    arr = np.ascontiguousarray(disp.array[::step, ::step, ::step], dtype=np.int16)
    # canonical array is [S, P, L]; VTK wants x (L) fastest, which is C order of [S, P, L]
    dims = (arr.shape[2], arr.shape[1], arr.shape[0])
    ss, sp, sl = disp.spacing
    img.SetSpacing(sl * step, sp * step, ss * step)
    img.SetOrigin(*(float(v) for v in disp.lps((0, 0, 0))))  # LPS = VTK x (L), y (P), z (S)
    scalars = img.GetPointData().GetScalars()
    if scalars is not None and tuple(img.GetDimensions()) == dims and scalars.GetDataType() == VTK_SHORT:
        numpy_support.vtk_to_numpy(scalars)[:] = arr.ravel(order="C")
        scalars.Modified()
    else:
        img.SetDimensions(*dims)
        vtk_arr = numpy_support.numpy_to_vtk(arr.ravel(order="C"), deep=True, array_type=VTK_SHORT)
        vtk_arr.SetName("HU")
        img.GetPointData().SetScalars(vtk_arr)
    img.Modified()


def apply_preset(prop, mapper, name: str) -> None:
    """Set colour/opacity transfer functions and blend mode for a CT preset."""
    _, rc = _vtk()
    from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
    from vtkmodules.vtkRenderingCore import vtkColorTransferFunction

    name = name.lower()
    if name not in PRESETS_3D:
        raise ValueError(f"unknown 3D preset {name!r}; choose one of {PRESETS_3D}")
    color, opacity = vtkColorTransferFunction(), vtkPiecewiseFunction()
    if name == "bone":
        for hu, rgb in ((-1024, (0, 0, 0)), (150, (0.55, 0.25, 0.15)), (300, (0.88, 0.78, 0.66)), (1500, (1, 1, 0.95))):
            color.AddRGBPoint(hu, *rgb)
        for hu, a in ((-1024, 0), (150, 0), (250, 0.15), (600, 0.6), (1500, 0.85), (3071, 0.9)):
            opacity.AddPoint(hu, a)
        prop.ShadeOn()
        mapper.SetBlendModeToComposite()
    elif name == "soft tissue":
        for hu, rgb in ((-1024, (0, 0, 0)), (-300, (0.6, 0.35, 0.25)), (0, (0.85, 0.55, 0.45)),
                        (80, (0.95, 0.7, 0.6)), (300, (1, 0.95, 0.85)), (1500, (1, 1, 1))):
            color.AddRGBPoint(hu, *rgb)
        for hu, a in ((-1024, 0), (-400, 0), (-200, 0.02), (0, 0.08), (80, 0.15), (300, 0.4), (1500, 0.7)):
            opacity.AddPoint(hu, a)
        prop.ShadeOn()
        mapper.SetBlendModeToComposite()
    else:  # mip: brightest voxel along each ray, grey levels over [-300, 1000] HU, opaque above -300
        for hu, g in ((-1024, 0.0), (-300, 0.0), (1000, 1.0)):
            color.AddRGBPoint(hu, g, g, g)
        for hu, a in ((-1024, 0.0), (-300, 0.0), (-250, 1.0), (3071, 1.0)):
            opacity.AddPoint(hu, a)
        prop.ShadeOff()
        mapper.SetBlendModeToMaximumIntensity()
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetInterpolationTypeToLinear()
    prop.SetAmbient(0.25)
    prop.SetDiffuse(0.8)
    prop.SetSpecular(0.15)


def build_renderer(image_data, preset: str = "bone"):
    """(renderer, vtkVolume, mapper) for ``image_data``; call :func:`anterior_camera` once the
    renderer is in its window (the framing uses the window's aspect)."""
    _, rc = _vtk()
    from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

    mapper = vtkSmartVolumeMapper()
    mapper.SetInputData(image_data)
    prop = rc.vtkVolumeProperty()
    apply_preset(prop, mapper, preset)
    actor = rc.vtkVolume()
    actor.SetMapper(mapper)
    actor.SetProperty(prop)
    ren = rc.vtkRenderer()
    ren.SetBackground(0.05, 0.05, 0.08)
    ren.AddVolume(actor)
    return ren, actor, mapper


def anterior_camera(ren) -> None:
    """Look at the patient's face: superior up, patient left on screen right; the volume's
    projected box (not its bounding sphere) fills about 85% of the view, so flat slabs fill it too."""
    ren.ResetCamera()
    cam = ren.GetActiveCamera()
    fx, fy, fz = cam.GetFocalPoint()
    d = cam.GetDistance()
    cam.SetPosition(fx, fy - d, fz)
    cam.SetViewUp(0, 0, 1)
    ren.ResetCamera()
    bounds = ren.ComputeVisiblePropBounds()
    x0, x1, _, _, z0, z1 = bounds
    rw = ren.GetRenderWindow()
    w, h = rw.GetSize() if rw is not None else (1, 1)
    aspect = (w / h) if w > 0 and h > 0 else 1.0
    # ResetCamera fits the bounding sphere (radius: half the box diagonal), about 2 r tall at the focus
    radius = 0.5 * math.sqrt(sum((bounds[2 * i + 1] - bounds[2 * i]) ** 2 for i in range(3)))
    need = max(z1 - z0, (x1 - x0) / aspect) / 0.85
    if need > 0:
        cam.Zoom(min(4.0, max(0.5, 2.0 * radius / need)))


def grab_render_window(rw) -> np.ndarray:
    """Render ``rw`` and return its RGB image as (h, w, 3) uint8, top row first."""
    _, rc = _vtk()
    from vtkmodules.util import numpy_support

    rw.Render()
    grab = rc.vtkWindowToImageFilter()
    grab.SetInput(rw)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    return numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1].copy()


def render_to_array(volume: Volume | DisplayVolume, preset: str = "bone", size=(256, 256), max_dim: int = 128) -> np.ndarray:
    """Render offscreen (EGL/OSMesa, no window) and return the RGB image as (h, w, 3) uint8."""
    _, rc = _vtk()
    ren, _, _ = build_renderer(make_image_data(volume, max_dim=max_dim), preset)
    rw = rc.vtkRenderWindow()
    rw.SetOffScreenRendering(1)
    rw.SetSize(*size)
    rw.AddRenderer(ren)
    anterior_camera(ren)
    arr = grab_render_window(rw)
    rw.Finalize()
    return arr[..., :3]


def trigger_window_shortcut(widget: QWidget, ev: QKeyEvent) -> bool:
    """Trigger the enabled action of ``widget``'s window whose shortcut is the key of ``ev`` (a preset's
    number key, Home, Ctrl+P...); True when one was triggered.

    Qt triggers shortcuts itself before a key reaches a widget, but not always (a window that is not
    the active one, e.g. under a test X server or some window managers, still delivers keys to the
    widget under focus); the 3D view hands such keys here instead of to VTK."""
    mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier  # keypad 3 is the 3 key
    key = Qt.Key(ev.key())
    if key in (Qt.Key.Key_unknown, Qt.Key.Key_Shift, Qt.Key.Key_Control, Qt.Key.Key_Alt, Qt.Key.Key_Meta):
        return False
    pressed = QKeySequence(QKeyCombination(mods, Qt.Key(key)))
    for act in widget.window().findChildren(QAction):
        if act.isEnabled() and any(s.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch
                                   for s in act.shortcuts() if not s.isEmpty()):
            act.trigger()
            return True
    return False


def _vtk_widget_without_vtk_keys(parent: QWidget):
    """A ``QVTKRenderWindowInteractor`` that never hands a key to VTK.

    VTK's interactor styles bind plain keys (3 red-blue stereo, w wireframe, s surface, j/t joystick /
    trackball, f fly to, p pick, r reset camera, u user callback, e/q exit). In ctstudio every key
    does what README and the menus say wherever the pointer is: a key pressed over the 3D view goes to
    the window's shortcuts (:func:`trigger_window_shortcut`) or on to the parent widgets, never to VTK.
    Mouse rotation and wheel zoom still go to VTK."""
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

    class VTKWidget(QVTKRenderWindowInteractor):
        def keyPressEvent(self, ev) -> None:  # noqa: N802 (Qt override)
            if trigger_window_shortcut(self, ev):
                ev.accept()
            else:
                ev.ignore()  # on to the parent widgets; VTK's KeyPressEvent/CharEvent never fire

        def keyReleaseEvent(self, ev) -> None:  # noqa: N802
            ev.ignore()

    return VTKWidget(parent)


class Volume3D(QWidget):
    """The 3D view: preset chooser, reset, and a VTK render window (rotate: left-drag; zoom: wheel).
    Keys pressed over it do what they do everywhere in the window (VTK's own key bindings are off)."""

    def __init__(self, parent=None, preset: str = "bone", max_dim: int = 192) -> None:
        super().__init__(parent)
        if not can_embed_vtk():
            raise RuntimeError("the VTK 3D view needs a real window (QT_QPA_PLATFORM=xcb, e.g. under Xvfb)")
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

        _vtk()
        self.max_dim = max_dim
        self.preset = preset
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.addItems(list(PRESETS_3D))
        self.combo.setCurrentText(preset)
        self.combo.currentTextChanged.connect(self.set_preset)
        reset = QPushButton("Reset 3D")
        reset.clicked.connect(self.reset_camera)
        bar.addWidget(self.combo)
        bar.addWidget(reset)
        bar.addStretch(1)
        lay.addLayout(bar)
        self.vtk_widget = _vtk_widget_without_vtk_keys(self)
        lay.addWidget(self.vtk_widget, 1)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.interactor = self.render_window.GetInteractor()
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.renderer = None
        self.actor = None
        self.mapper = None
        self.image_data = None
        self.vtk_widget.Initialize()

    def set_volume(self, volume: Volume | DisplayVolume | None) -> None:
        if self.renderer is not None:
            self.render_window.RemoveRenderer(self.renderer)
            self.renderer = None
        if volume is None:
            self.image_data = None
            self.render_window.Render()
            return
        self.image_data = make_image_data(volume, self.max_dim)
        self.renderer, self.actor, self.mapper = build_renderer(self.image_data, self.preset)
        self.render_window.AddRenderer(self.renderer)
        anterior_camera(self.renderer)
        self.render_window.Render()

    def update_volume(self, volume: Volume | DisplayVolume) -> None:
        """The shown volume with new slices (or grown): new voxels in the same scene, the camera kept."""
        if self.image_data is None:
            self.set_volume(volume)
            return
        update_image_data(self.image_data, volume, self.max_dim)
        self.render_window.Render()

    def set_preset(self, name: str) -> None:
        self.preset = name
        if self.combo.currentText() != name:
            self.combo.setCurrentText(name)
        if self.actor is not None:
            apply_preset(self.actor.GetProperty(), self.mapper, name)
            self.render_window.Render()

    def reset_camera(self) -> None:
        if self.renderer is not None:
            anterior_camera(self.renderer)
            self.render_window.Render()

    def shutdown(self) -> None:
        """Close the VTK widget (never Finalize() a shown one: it segfaults at the next paint)."""
        self.vtk_widget.close()
