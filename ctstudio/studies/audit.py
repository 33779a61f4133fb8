"""``ctstudio study audit SPEC``: can a reader or a script tell the pools apart by anything but anatomy?

For every case of both pools the audit measures what could leak the class:

* container: file format, file size, on-disk pixel type, header fields (NIfTI / MHA / NRRD
  metadata through SimpleITK, the volume's non-identifying DICOM-derived metadata such as kernel,
  manufacturer, series description, and the provenance: a model name in a file is a leak);
* geometry: dimensions, spacing;
* values: quantisation (greatest common divisor of the value steps, share of distinct values),
  HU range, noise floor (Immerkaer's fast noise estimate on the displayed slice);
* file names: class words ("real", "fake", "synth", "gen", ...) in a file's (or DICOM folder's)
  own name (the pool folders are usually named after their class and are not checked).

Each feature is compared between the classes: values that separate the pools completely (disjoint
sets or non-overlapping ranges) are ``high`` findings; strongly shifted distributions (rank AUC
>= 0.9 or <= 0.1) are ``medium``. Readers only ever see the display pipeline's output (same dtype,
shape, spacing and window for every case), but a script with the files, or a reader told the file
names, could use these.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import CTStudioError
from ctstudio.io import is_volume_file
from ctstudio.studies.spec import StudySpec, is_2d_image, resolve_pools

CLASS_WORDS = re.compile(r"(real|fake|synth|synthetic|generated|gen|sample|sampled|model|ascii|diffusion|gan|"
                         r"degraded|perturbed|orig|original)", re.IGNORECASE)
SKIP_HEADER_KEYS = {"ITK_FileNotes", "ITK_original_direction", "ITK_original_spacing", "qto_xyz", "sto_xyz",
                    "srow_x", "srow_y", "srow_z", "quatern_b", "quatern_c", "quatern_d", "qoffset_x",
                    "qoffset_y", "qoffset_z", "pixdim[1]", "pixdim[2]", "pixdim[3]", "dim[1]", "dim[2]",
                    "dim[3]", "ITK_InputFilterName"}


def _file_size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


#: DICOM attributes that could tell a generator's output from a scanner's (compared between the pools)
DICOM_TAGS = ("ImageType", "SyntheticData", "DerivationDescription", "BurnedInAnnotation", "SeriesDescription",
              "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "KVP",
              "SliceThickness", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
              "RescaleSlope", "RescaleIntercept", "PhotometricInterpretation", "Rows", "Columns",
              "StationName", "InstitutionName", "BodyPartExamined", "Modality", "LossyImageCompression")


def _dicom_header(p: Path) -> tuple[str, dict[str, str]]:
    """Selected attributes of the first DICOM file of a series (or the file), its transfer syntax,
    and whether a Contributing Equipment Sequence (where a model would be named) is present."""
    import pydicom

    first = p
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        first = next((f for f in files if not f.name.startswith(".")), None)
        if first is None:
            return "dicom", {}
    try:
        ds = pydicom.dcmread(str(first), stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - the reader already accepted the case; the audit reports what it can
        return "dicom", {}
    fields = {}
    for tag in DICOM_TAGS:
        v = ds.get(tag)
        if v is not None and str(v) != "":
            fields[tag] = str(v)[:80]
    fields["ContributingEquipmentSequence"] = "present" if "ContributingEquipmentSequence" in ds else "absent"
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        fields["TransferSyntaxUID"] = str(ts)
    bits = f"{ds.get('BitsStored', '?')}-bit {'signed' if ds.get('PixelRepresentation', 0) else 'unsigned'}"
    return f"dicom {bits}", fields


def _header(p: Path) -> tuple[str, dict[str, str]]:
    """On-disk pixel type and header fields."""
    if is_2d_image(p):
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(p)) as tf:
                page = tf.pages[0]
                fields = {t.name: str(t.value)[:80] for t in page.tags.values()
                          if t.name not in ("StripOffsets", "StripByteCounts", "ImageWidth", "ImageLength")}
                return str(page.dtype), fields
        from PIL import Image

        with Image.open(p) as im:
            return im.mode, {str(k): str(v)[:80] for k, v in im.info.items()}
    if p.is_dir() or not is_volume_file(p):
        return _dicom_header(p)
    import SimpleITK as sitk

    r = sitk.ImageFileReader()
    r.SetFileName(str(p))
    r.ReadImageInformation()
    fields = {}
    for k in r.GetMetaDataKeys():
        if k in SKIP_HEADER_KEYS:
            continue
        fields[k] = r.GetMetaData(k).strip()[:80]
    return sitk.GetPixelIDValueAsString(r.GetPixelID()), fields


def noise_floor(img: np.ndarray) -> float:
    """Immerkaer (1996) fast noise sigma estimate of a 2D image."""
    from scipy.signal import convolve2d

    img = np.asarray(img, dtype=np.float64)
    if min(img.shape) < 3:
        return float("nan")
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    conv = convolve2d(img, k, mode="valid")
    h, w = img.shape
    return float(math.sqrt(math.pi / 2) * np.abs(conv).sum() / (6.0 * (w - 2) * (h - 2)))


def case_features(path: str) -> dict[str, Any]:
    from ctstudio.studies.images import load_case

    p = Path(path)
    vol = load_case(p)
    a = vol.array
    dtype, header = _header(p)
    uniq = np.unique(a)
    steps = np.diff(uniq.astype(np.int64))
    gcd = int(np.gcd.reduce(steps)) if len(steps) else 0
    mid = a[a.shape[0] // 2]
    name = p.name.lower()
    fmt = ("png" if name.endswith(".png") else "tiff" if name.endswith((".tif", ".tiff")) else
           "jpeg" if name.endswith((".jpg", ".jpeg")) else "nifti" if name.endswith((".nii", ".nii.gz")) else
           "mha" if name.endswith((".mha", ".mhd")) else "nrrd" if name.endswith((".nrrd", ".nhdr")) else "dicom")
    md = {k: v for k, v in vol.metadata.to_dict().items() if v not in ("", None)}
    feats: dict[str, Any] = {
        "format": fmt,
        "file_size": _file_size(p),
        "pixel_type": dtype,
        "shape": "x".join(str(s) for s in vol.shape),
        "spacing": "x".join(f"{s:.4g}" for s in vol.spacing),
        "value_step_gcd": gcd,
        "distinct_value_share": float(len(uniq) / max(1, a.size)),
        "value_min": int(a.min()),
        "value_max": int(a.max()),
        "noise_floor": noise_floor(mid),
        "model_in_provenance": vol.provenance.model or "",
        # the file (or DICOM folder) name only: pools usually sit in folders named after their class
        "class_word_in_name": ",".join(sorted({m.lower() for m in CLASS_WORDS.findall(p.name)})),
    }
    for k, v in md.items():
        feats[f"meta:{k}"] = str(v)
    for k, v in header.items():
        feats[f"header:{k}"] = v
    return feats


CATEGORICAL_HINTS = {
    "format": "convert both pools to the same format",
    "pixel_type": "store both pools with the same pixel type",
    "shape": "resample / crop both pools to the same dimensions (readers see the display grid only, "
             "but a script sees the files)",
    "spacing": "resample both pools to the same spacing",
    "value_step_gcd": "the values of one pool are quantised more coarsely: round both pools alike",
    "model_in_provenance": "strip the model name from the files handed to readers or scripts",
    "class_word_in_name": "rename the files (the store hands readers opaque tokens, but a script sees names)",
}
NUMERIC = ("file_size", "distinct_value_share", "value_min", "value_max", "noise_floor")


def _auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) + 0.5 P(a == b): the rank AUC (Mann-Whitney U / (n_a n_b))."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    gt = (a[:, None] > b[None, :]).sum()
    eq = (a[:, None] == b[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(a) * len(b)))


def audit_cases(real: list[dict[str, Any]], synthetic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    findings = []
    keys = sorted(set().union(*real, *synthetic)) if real and synthetic else []
    for k in keys:
        rv = [f.get(k, "<absent>") for f in real]
        sv = [f.get(k, "<absent>") for f in synthetic]
        if k in NUMERIC:
            ra = np.array([x for x in rv if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))])
            sa = np.array([x for x in sv if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))])
            if not len(ra) or not len(sa):
                continue
            disjoint = ra.max() < sa.min() or sa.max() < ra.min()
            auc = _auc(ra, sa)
            sev = "high" if disjoint else ("medium" if auc >= 0.9 or auc <= 0.1 else None)
            if sev:
                findings.append({
                    "feature": k, "severity": sev,
                    "real": {"min": float(ra.min()), "max": float(ra.max()), "median": float(np.median(ra))},
                    "synthetic": {"min": float(sa.min()), "max": float(sa.max()), "median": float(np.median(sa))},
                    "auc": round(auc, 3),
                    "message": (f"{k} {'separates the pools completely' if disjoint else 'differs strongly'}: "
                                f"real {ra.min():.4g}..{ra.max():.4g}, synthetic {sa.min():.4g}..{sa.max():.4g}"),
                })
            continue
        rs, ss = set(map(str, rv)), set(map(str, sv))
        if k == "class_word_in_name":
            words = (rs | ss) - {""}
            if words:
                findings.append({"feature": k, "severity": "high" if rs != ss else "medium",
                                 "real": sorted(rs), "synthetic": sorted(ss),
                                 "message": f"file paths contain class words {sorted(words)}",
                                 "hint": CATEGORICAL_HINTS[k]})
            continue
        if k == "model_in_provenance" and (rs | ss) == {""}:
            continue
        if rs == ss:
            continue
        sev = "high" if not (rs & ss) else "medium"
        hint = CATEGORICAL_HINTS.get(k.split(":")[0] if ":" in k else k,
                                     "make the header field identical in both pools, or remove it")
        findings.append({"feature": k, "severity": sev, "real": sorted(rs)[:5], "synthetic": sorted(ss)[:5],
                         "message": (f"{k} {'separates the pools completely' if sev == 'high' else 'differs'}: "
                                     f"real {sorted(rs)[:3]}, synthetic {sorted(ss)[:3]}"),
                         "hint": hint})
    order = {"high": 0, "medium": 1}
    findings.sort(key=lambda f: (order[f["severity"]], f["feature"]))
    return findings


def audit_spec(spec: StudySpec) -> dict[str, Any]:
    """Audit both pools of a spec; returns {'study', 'n_real', 'n_synthetic', 'findings', 'notes'}."""
    cases = resolve_pools(spec)
    feats: dict[str, list[dict[str, Any]]] = {"real": [], "synthetic": []}
    for c in cases:
        try:
            feats[c.cls].append(case_features(c.path))
        except CTStudioError:
            raise
        except OSError as exc:
            raise CTStudioError(f"cannot read the case for the audit ({exc})", path=c.path) from None
    notes = []
    if min(len(feats["real"]), len(feats["synthetic"])) < 3:
        notes.append("a pool has fewer than 3 cases: any numeric difference looks 'complete'; judge with care")
    if any(is_2d_image(c.path) for c in cases):
        notes.append("2D images hold grey values, not HU; the window is applied to grey values")
    findings = audit_cases(feats["real"], feats["synthetic"])
    notes.append("readers see only the display pipeline's output (same dtype, shape, spacing and window for "
                 "every case) and opaque case tokens; the findings concern the files themselves")
    return {"study": spec.name, "spec": spec.path, "n_real": len(feats["real"]),
            "n_synthetic": len(feats["synthetic"]), "n_high": sum(f["severity"] == "high" for f in findings),
            "findings": findings, "notes": notes}


def format_audit(rep: dict[str, Any]) -> str:
    lines = [f"audit of study {rep['study']!r}: {rep['n_real']} real, {rep['n_synthetic']} synthetic cases",
             f"{len(rep['findings'])} finding(s), {rep['n_high']} that separate the pools completely"]
    for f in rep["findings"]:
        lines.append(f"  [{f['severity']}] {f['message']}")
        if f.get("hint"):
            lines.append(f"         -> {f['hint']}")
    for n in rep["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


__all__ = ["audit_spec", "format_audit", "case_features", "audit_cases", "noise_floor"]
