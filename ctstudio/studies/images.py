"""Case images and the one display pipeline every study image goes through.

* :func:`load_case` reads a volume through :func:`ctstudio.io.read_volume` (DICOM, NIfTI, MHA,
  NRRD) or a 2D image (PNG / TIFF / JPEG through Pillow or tifffile) as a 1-slice volume.
  **A 2D image holds grey values, not HU**: they are stored unchanged in the volume's int16 array,
  and the provenance says so; the study's window then applies to grey values (give
  ``window = [lower, upper]`` in grey levels for such a study).
* :func:`prepare` puts a case on the study's display grid: the chosen plane(s) are resampled
  (linear) to a square ``size x size`` grid of isotropic display pixels, the physical aspect kept
  and the margin padded with the window's lower bound, as float32. The result has the same
  dtype, shape, pixel spacing and window for every case, real or synthetic, so nothing in what
  reaches the screen depends on the source file's format, size or spacing.
* :meth:`DisplayCase.render` applies the one window function (uint8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctstudio.errors import NotAnImageError, VolumeReadError
from ctstudio.imaging.window import Window, apply_window
from ctstudio.studies.spec import DisplaySpec, is_2d_image
from ctstudio.volume import Provenance, Volume

GREY_NOTE = "2D image: grey values stored as-is, NOT Hounsfield units"


def read_image_2d(path: str | Path) -> Volume:
    """A PNG / TIFF / JPEG as a 1-slice Volume of grey values (not HU; see module doc)."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(str(p)))
        else:
            from PIL import Image

            with Image.open(p) as im:
                if im.mode not in ("L", "I;16", "I;16B", "I", "F"):
                    im = im.convert("L")
                arr = np.asarray(im)
    except FileNotFoundError:
        raise VolumeReadError("no such image file", path=p) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a user-facing read error
        raise NotAnImageError(f"cannot read as a 2D image ({type(exc).__name__}: {exc})", path=p,
                              hint="give a PNG or TIFF greyscale image") from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise NotAnImageError(f"expected a 2D greyscale image, got an array of shape {arr.shape}", path=p)
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    if arr.size and (arr.min() < -32768 or arr.max() > 32767):
        raise NotAnImageError("grey values exceed the int16 range", path=p)
    return Volume(arr.astype(np.int16)[np.newaxis], provenance=Provenance(source_files=(str(p),), steps=(GREY_NOTE,)))


def load_case(path: str | Path) -> Volume:
    """Read a case: a 2D image (grey values) or a CT volume in HU."""
    if is_2d_image(path):
        return read_image_2d(path)
    from ctstudio.io import read_volume

    return read_volume(path)


def _resample_plane(plane: np.ndarray, row_mm: float, col_mm: float, size: int, fill: float) -> np.ndarray:
    """Linear resampling of a 2D plane onto a size x size grid of square pixels, centred, padded."""
    from scipy.ndimage import map_coordinates

    rows, cols = plane.shape
    h_mm, w_mm = rows * row_mm, cols * col_mm
    pix = max(h_mm, w_mm) / size  # mm per display pixel (isotropic)
    out_h = max(1, int(round(h_mm / pix)))
    out_w = max(1, int(round(w_mm / pix)))
    # Display pixel centres -> continuous source indices.
    r = (np.arange(out_h) + 0.5) * pix / row_mm - 0.5
    c = (np.arange(out_w) + 0.5) * pix / col_mm - 0.5
    rr, cc = np.meshgrid(r, c, indexing="ij")
    vals = map_coordinates(plane.astype(np.float32), [rr, cc], order=1, mode="nearest")
    out = np.full((size, size), fill, dtype=np.float32)
    r0, c0 = (size - out_h) // 2, (size - out_w) // 2
    out[r0:r0 + out_h, c0:c0 + out_w] = vals
    return out


@dataclass(frozen=True)
class DisplayCase:
    """A case on the study's display grid: ``planes`` float32 (n, size, size), values as in the source
    (HU, or grey values for 2D images). ``n`` is 1 (axial), 3 (axial, coronal, sagittal), ``depth``
    ("volume"), or the depth of the isotropic display cube ("reformat": the views cut its planes)."""

    planes: np.ndarray
    mode: str

    def render(self, window: Window, index: int | None = None) -> np.ndarray:
        """uint8 grey levels through the one window function; all planes, or just ``index``."""
        src = self.planes if index is None else self.planes[index]
        return apply_window(src, window, np.uint8)


def _slice_index(n: int, where) -> int:
    if where == "middle":
        return n // 2
    return int(min(n - 1, max(0, round(float(where) * (n - 1)))))


def prepare(volume: Volume, display: DisplaySpec) -> DisplayCase:
    """Put a volume on the display grid (see module doc). Same output dtype/shape for every input."""
    a = volume.array
    sx, sy, sz = volume.spacing
    size = display.size
    fill = float(display.window[0])
    nz, ny, nx = a.shape
    if display.mode == "axial":
        planes = [_resample_plane(a[_slice_index(nz, display.slice)], sy, sx, size, fill)]
    elif display.mode == "three_planes":
        planes = [
            _resample_plane(a[_slice_index(nz, display.slice)], sy, sx, size, fill),
            _resample_plane(a[::-1, ny // 2, :], sz, sx, size, fill),  # coronal, superior at top
            _resample_plane(a[::-1, :, nx // 2], sz, sy, size, fill),  # sagittal
        ]
    elif display.mode == "volume":
        depth = display.depth
        zs = np.linspace(0, nz - 1, depth) if nz > 1 else np.zeros(depth)
        z0 = np.floor(zs).astype(int)
        z1 = np.minimum(z0 + 1, nz - 1)
        t = (zs - z0).astype(np.float32)
        planes = []
        for k in range(depth):
            sl = a[z0[k]].astype(np.float32) * (1 - t[k]) + a[z1[k]].astype(np.float32) * t[k]
            planes.append(_resample_plane(sl, sy, sx, size, fill))
    elif display.mode == "reformat":
        return DisplayCase(_display_cube(volume, size, fill), "reformat")
    else:  # pragma: no cover - validated by the spec
        raise ValueError(display.mode)
    return DisplayCase(np.stack(planes).astype(np.float32), display.mode)


def _display_cube(volume: Volume, size: int, fill: float) -> np.ndarray:
    """The volume resampled (linear) to isotropic display voxels: in-plane to ``size x size`` as the other
    modes (aspect kept, padded), z to the same voxel size, so axial, coronal and sagittal planes of the
    cube all show the anatomy at its physical aspect. float32 (nz', size, size)."""
    a = volume.array
    sx, sy, sz = volume.spacing
    nz, ny, nx = a.shape
    pix = max(ny * sy, nx * sx) / size
    out_z = max(1, int(round(nz * sz / pix)))
    zs = np.clip((np.arange(out_z) + 0.5) * pix / sz - 0.5, 0, nz - 1)
    z0 = np.floor(zs).astype(int)
    z1 = np.minimum(z0 + 1, nz - 1)
    t = (zs - z0).astype(np.float32)
    cube = np.empty((out_z, size, size), np.float32)
    for k in range(out_z):
        sl = a[z0[k]].astype(np.float32) * (1 - t[k]) + a[z1[k]].astype(np.float32) * t[k]
        cube[k] = _resample_plane(sl, sy, sx, size, fill)
    return cube


def window_of(display: DisplaySpec) -> Window:
    return Window.from_range(display.window[0], display.window[1], display.window_name)
