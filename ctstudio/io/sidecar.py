"""The provenance sidecar: ``NAME.provenance.json`` beside ``NAME.nii.gz`` (NIfTI has no field to hold it).

One writer for every place that saves a volume whose origin matters (the Generate and Convert tabs' saves, a
study pool case, the demo study's cases), written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from ctstudio.io.atomic import atomic_write_bytes
from ctstudio.volume import Volume


def sidecar_path(path) -> Path:
    """Where the provenance of ``path`` goes: ``NAME.provenance.json`` beside ``NAME.nii.gz`` (or ``NAME.ext``)."""
    p = Path(path)
    stem = p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem
    return p.with_name(f"{stem}.provenance.json")


def write_provenance_sidecar(volume: Volume, path, **extra) -> Path:
    """Write the sidecar of the volume saved at ``path``: the file name, ``extra`` fields (e.g. ``made_by``), the
    model, its version and parameters, geometry, metadata and the whole provenance. Returns the sidecar's path."""
    prov = volume.provenance
    record = {"file": Path(path).name, **extra, "model": prov.model, "model_version": prov.model_version,
              "parameters": prov.parameters, "synthetic": prov.synthetic, "shape_zyx": list(volume.shape),
              "spacing_xyz_mm": list(volume.spacing), "metadata": volume.metadata.to_dict(),
              "provenance": prov.to_dict()}
    out = sidecar_path(path)
    atomic_write_bytes(out, (json.dumps(record, indent=2, default=str) + "\n").encode())
    return out
