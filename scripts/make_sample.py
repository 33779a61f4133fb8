"""Rebuild resources/sample/headsq_hu.nii.gz from ../shared/data (see resources/README.md)."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

root = Path(__file__).resolve().parents[1]
src = root.parent / "shared/data/head-ct-vtk-headsq/headsq_64x64x93_raw-values.nii.gz"
raw = sitk.GetArrayFromImage(sitk.ReadImage(str(src))).astype(np.int32)
hu = (raw - 1024)[::-1].astype(np.int16)  # approximate HU; slice 0 = most inferior (LPS +z upward)
out = sitk.GetImageFromArray(np.ascontiguousarray(hu))
out.SetSpacing((3.2, 3.2, 1.5))
out.SetOrigin((-63 * 3.2 / 2, -63 * 3.2 / 2, 0.0))
sitk.WriteImage(out, str(root / "resources/sample/headsq_hu.nii.gz"), useCompression=True)
print("wrote", hu.shape, int(hu.min()), int(hu.max()))
