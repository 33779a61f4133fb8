"""What a training-data folder holds, before a run starts: the Train tab's (and a user's) first look.

:func:`scan_data` is a job (:mod:`ctstudio.jobs`): it walks a folder, reads every CT volume in it
(NIfTI / MHA / NRRD files and DICOM series folders), yields one ``scan`` event per volume and returns a
:class:`DataSummary`: per volume its shape, spacing, HU range and reconstruction kernel (the DICOM
ConvolutionKernel tag, or for GGCL the kernel token in the file or folder name, as the GGCL recipe assigns
it), whether the chosen model kind's recipe will train on it, and the problems found: files it cannot
read, mixed in-plane sizes, values that do not look like HU, too few slices, and for GGCL a kernel of the
config with no volume (a kernel with no pair) or a volume that matches none of the config's kernels.

The layouts each model kind expects are documented in ``docs/training-data.md``. No Qt, no torch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctstudio.errors import CTStudioError, InputError
from ctstudio.io import DICOM_SUFFIXES, VOLUME_SUFFIXES
from ctstudio.jobs import Progress, check_cancel

#: model kinds the scan knows the data rules of (the keys of ctstudio.training.recipes.RECIPES)
KINDS = ("score", "icnet", "ggcl", "cgan")
#: air is about -1000 HU: a volume whose lowest value is above this does not look calibrated in HU
HU_AIR_LIMIT = -500.0
#: files that are expected beside CT data and are not reported as unreadable
HARMLESS_SUFFIXES = (".txt", ".md", ".json", ".csv", ".sha256", ".pdf", ".html", ".toml", ".yaml", ".yml", ".png",
                     ".jpg", ".log", ".py", ".db")


@dataclass
class VolumeEntry:
    """One volume found (or a candidate that could not be read: ``error`` says why)."""

    path: str
    kind: str                                 # "file" (NIfTI/MHA/NRRD) or "dicom" (a series folder)
    shape_zyx: tuple[int, int, int] | None = None
    spacing_xyz_mm: tuple[float, float, float] | None = None
    hu_min: float | None = None
    hu_max: float | None = None
    kernel: str = ""                          # the DICOM ConvolutionKernel (or the file's metadata)
    domain: str | None = None                 # GGCL: the config kernel this volume trains as
    used: bool = False                        # the recipe of the chosen kind reads it
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class DataSummary:
    """What :func:`scan_data` found in a folder for one model kind."""

    folder: str
    model_kind: str
    volumes: list[VolumeEntry] = field(default_factory=list)
    other_files: int = 0                      # files that are not CT (README, checksums...)
    problems: list[str] = field(default_factory=list)
    domains: tuple[str, ...] = ()             # GGCL: the kernels the config trains between

    @property
    def readable(self) -> list[VolumeEntry]:
        return [v for v in self.volumes if not v.error]

    @property
    def used(self) -> list[VolumeEntry]:
        return [v for v in self.volumes if v.used and not v.error]

    @property
    def ok(self) -> bool:
        """The recipe has something to train on (problems may remain: read them)."""
        return bool(self.used)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "model_kind": self.model_kind, "volumes": [v.to_dict() for v in self.volumes],
                "other_files": self.other_files, "problems": list(self.problems), "domains": list(self.domains),
                "ok": self.ok}

    def lines(self) -> list[str]:
        """The summary in words, one line each (what the Train tab and a log show)."""
        good = self.readable
        out = [f"{self.folder}: {len(good)} volume(s) readable, {len(self.used)} used for {self.model_kind} training, "
               f"{len(self.volumes) - len(good)} unreadable, {self.other_files} other file(s)"]
        if good:
            slices = sum(v.shape_zyx[0] for v in good)
            lo = min(v.hu_min for v in good)
            hi = max(v.hu_max for v in good)
            out.append(f"{slices} slices in all; values {lo:g} .. {hi:g} HU")
        if self.domains:
            counts = Counter(v.domain for v in self.used)
            out.append("kernels: " + ", ".join(f"{d} x{counts.get(d, 0)}" for d in self.domains))
        for v in self.volumes:
            name = os.path.relpath(v.path, self.folder) if v.path != self.folder else Path(v.path).name
            if v.error:
                out.append(f"  [unreadable] {name}: {v.error}")
                continue
            z, y, x = v.shape_zyx
            sx, sy, sz = v.spacing_xyz_mm
            extra = f", kernel {v.kernel}" if v.kernel else ""
            if v.domain:
                extra += f" -> trains as {v.domain}"
            out.append(f"  [{'used' if v.used else 'not used'}] {name}: {z}x{y}x{x} (z, y, x), "
                       f"{sx:.3g} x {sy:.3g} x {sz:.3g} mm, {v.hu_min:g} .. {v.hu_max:g} HU{extra}")
        out += [f"problem: {p}" for p in self.problems] or ["no problems found"]
        return out


def _has_suffix(name: str, suffixes) -> bool:
    low = name.lower()
    return any(low.endswith(s) for s in suffixes)


def _looks_dicom(path: Path) -> bool:
    from ctstudio.io.dicom.header import looks_like_dicom, looks_like_raw_dataset

    return _has_suffix(path.name, DICOM_SUFFIXES) or looks_like_dicom(path) or looks_like_raw_dataset(path)


def find_candidates(folder: Path) -> tuple[list[tuple[Path, str]], int]:
    """Every volume file and every folder that directly holds DICOM files under ``folder`` (sorted), and the
    number of other files. A file is a candidate on its own."""
    folder = Path(folder)
    if folder.is_file():
        return [(folder, "file" if _has_suffix(folder.name, VOLUME_SUFFIXES) else "dicom")], 0
    if not folder.is_dir():
        raise InputError("no such folder", path=folder, hint="choose the folder that holds the training CT")
    found: list[tuple[Path, str]] = []
    other = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        dicom_here = False
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            p = Path(root) / name
            if _has_suffix(name, VOLUME_SUFFIXES):
                found.append((p, "file"))
            elif _has_suffix(name, HARMLESS_SUFFIXES):
                other += 1
            elif _looks_dicom(p):
                dicom_here = True
            else:
                other += 1
        if dicom_here:
            found.append((Path(root), "dicom"))
    return sorted(found), other


def recipe_inputs(folder: Path, model_kind: str) -> set[Path]:
    """The paths the recipe of ``model_kind`` will read from ``folder`` (its own rules, see the docs)."""
    folder = Path(folder)
    if folder.is_file():
        return {folder}
    if model_kind in ("score", "icnet"):
        from ctstudio.training.datasets import find_volumes

        try:
            return set(find_volumes(folder))
        except InputError:
            return set()
    if model_kind == "cgan":
        return {p for p in folder.iterdir() if p.is_file() and _has_suffix(p.name, VOLUME_SUFFIXES)}
    if model_kind == "ggcl":
        return {p for p in folder.iterdir() if (p.is_file() and _has_suffix(p.name, VOLUME_SUFFIXES)) or p.is_dir()}
    raise InputError(f"unknown model kind {model_kind!r}", hint=f"one of {', '.join(KINDS)}")


def ggcl_domains(config: str) -> tuple[str, ...]:
    """The kernels a GGCL config trains between (imports the recipe, so torch)."""
    from ctstudio.training.recipe_ggcl import GGCLConfig
    from ctstudio.training.recipes import load_config

    return tuple(load_config(GGCLConfig, config).domains)


def ggcl_domain(path: Path, kernel: str, domains) -> str | None:
    """The GGCL recipe's rule: a kernel token in the file or folder name, else (a folder) its kernel tag."""
    from ctstudio.training.recipe_ggcl import _domain_of, _strip_suffix

    name = _strip_suffix(path.name) if path.is_file() else path.name
    d = _domain_of(name, "", domains)
    if d is None and path.is_dir():
        d = _domain_of("", kernel, domains)
    return d


def scan_data(folder, model_kind: str = "score", config: str = "tiny", *, min_slices: int = 2,
              block: int | None = None, cancel: Any = None) -> Generator[dict, None, DataSummary]:
    """Scan ``folder`` for training ``model_kind`` with ``config`` (GGCL: its kernels); returns a DataSummary.

    ``min_slices``: fewer slices than this is a problem (IC-Net pairs need 2, a K-slice score model K);
    ``block``: the cGAN's block edge (a volume smaller than a block is not used by its recipe).
    """
    folder = Path(folder)
    if model_kind not in KINDS:
        raise InputError(f"unknown model kind {model_kind!r}", hint=f"one of {', '.join(KINDS)}")
    candidates, other = find_candidates(folder)
    summary = DataSummary(folder=str(folder), model_kind=model_kind, other_files=other)
    if model_kind == "ggcl":
        summary.domains = ggcl_domains(config)
    inputs = {p.resolve() for p in recipe_inputs(folder, model_kind)}
    progress = Progress("scan", total=len(candidates), unit="volume")
    yield progress.event("start", path=str(folder))
    from ctstudio.io import read_volume

    for i, (path, kind) in enumerate(candidates):
        check_cancel(cancel, f"scanned {i} of {len(candidates)} volumes in {folder}")
        entry = VolumeEntry(path=str(path), kind=kind, used=path.resolve() in inputs)
        try:
            vol = read_volume(path, tilt="resample", spacing="resample")
        except CTStudioError as exc:
            text = str(exc.args[0]) if exc.args else str(exc)
            entry.error = text.split(": ", 1)[1] if exc.path and text.startswith(f"{exc.path}: ") else text
            entry.error = " ".join(entry.error.split())
            entry.used = False
        except (OSError, ValueError, EOFError) as exc:  # a broken file the readers did not classify
            entry.error = f"{type(exc).__name__}: {exc}"
            entry.used = False
        else:
            a = vol.array
            entry.shape_zyx = tuple(int(n) for n in a.shape)
            entry.spacing_xyz_mm = tuple(round(float(s), 4) for s in vol.spacing)
            entry.hu_min, entry.hu_max = float(a.min()), float(a.max())
            entry.kernel = str(getattr(vol.metadata, "kernel", "") or "")
            if model_kind == "ggcl" and entry.used:
                entry.domain = ggcl_domain(path, entry.kernel, summary.domains)
                entry.used = entry.used and entry.domain is not None
            if model_kind == "cgan" and block and (min(a.shape) < block):
                entry.used = False
        summary.volumes.append(entry)
        yield progress.event("volume", i + 1, path=str(path), ok=not entry.error)
    summary.problems = find_problems(summary, min_slices=min_slices, block=block)
    return summary


def find_problems(s: DataSummary, min_slices: int = 2, block: int | None = None) -> list[str]:
    """The problems of a scanned folder, in words that say what to do."""
    out: list[str] = []
    bad = [v for v in s.volumes if v.error]
    for v in bad:
        out.append(f"cannot read {v.path}: {v.error}")
    good = s.readable
    if not s.volumes:
        out.append("no CT volume found (NIfTI / MHA / NRRD files or DICOM series folders)")
    sizes = Counter((v.shape_zyx[1], v.shape_zyx[2]) for v in good)
    if len(sizes) > 1:
        listed = ", ".join(f"{y}x{x} ({n})" for (y, x), n in sorted(sizes.items()))
        out.append(f"mixed in-plane sizes: {listed}; slices are resized to the config's resolution, which "
                   "distorts volumes of another aspect or field of view")
    spacings = Counter(v.spacing_xyz_mm[:2] for v in good)
    if len(spacings) > 1:
        out.append("mixed pixel spacing: " + ", ".join(f"{a:g} x {b:g} mm ({n})" for (a, b), n in
                                                        sorted(spacings.items())))
    for v in good:
        if v.hu_min > HU_AIR_LIMIT:
            out.append(f"{v.path}: lowest value {v.hu_min:g} does not look like HU (air is about -1000 HU); "
                       "convert it to HU first (e.g. value - 1024 for raw 12-bit data)")
        if v.shape_zyx[0] < min_slices:
            out.append(f"{v.path}: {v.shape_zyx[0]} slice(s); {s.model_kind} training needs at least {min_slices}")
    unused = [v for v in good if not v.used]
    if s.model_kind in ("score", "icnet"):
        for v in unused:
            if v.kind == "dicom":
                out.append(f"{v.path}: a DICOM series whose files do not end in .dcm is not read by the trainer; "
                           "rename the files to .dcm or export the series as NIfTI (ctstudio export)")
    elif s.model_kind == "cgan":
        for v in unused:
            why = f"smaller than a {block}³ block" if block and min(v.shape_zyx) < block else \
                "not a volume file directly in the folder (the cGAN reads NIfTI/MHA/NRRD files at the top level)"
            out.append(f"{v.path}: not used: {why}")
    elif s.model_kind == "ggcl":
        counts = Counter(v.domain for v in s.used)
        for d in s.domains:
            if not counts.get(d):
                out.append(f"kernel {d} has no volume: GGCL trains between {', '.join(s.domains)} and needs each; "
                           f"name a file or folder with the kernel as a token (e.g. scan_{d}.nii.gz)")
        for v in unused:
            what = f"kernel {v.kernel}" if v.kernel else "no kernel tag"
            out.append(f"{v.path} ({what}) matches none of the config's kernels ({', '.join(s.domains)}) "
                       "or is not at the top level of the folder: not used")
        shapes = {d: {v.shape_zyx for v in s.used if v.domain == d} for d in s.domains}
        firsts = [sorted(v)[0] for v in shapes.values() if v]
        if len(firsts) > 1 and len(set(firsts)) > 1:
            out.append("the kernels' volumes differ in shape (" + ", ".join(
                f"{d}: {'x'.join(map(str, sorted(v)[0]))}" for d, v in shapes.items() if v)
                + "); paired training (paired=true) needs the same scan reconstructed with each kernel")
    return out


def scan_data_now(folder, model_kind: str = "score", config: str = "tiny", **options) -> DataSummary:
    """:func:`scan_data` driven to its end (the command line and tests)."""
    from ctstudio.jobs import run_job

    return run_job(scan_data(folder, model_kind, config, **options))
