"""Study specification: a TOML file, validated with errors that name the field.

Example (see ``resources/studies/`` for complete templates)::

    [study]
    name = "headsq-pair-demo"
    kind = "pair"                  # "pair": which image is real?  "continuity": score structures
    seed = 20240101
    pairs_per_reader = 10          # pair studies (Korkinof et al.: 10)
    cases_per_reader = 10          # continuity studies (balanced real / synthetic)
    sampling = "with_replacement"  # or "balanced" (each case once before any repeats)
    exclude = ["real/bad_case.nii.gz"]
    min_view_ms = 1000             # an answer is accepted only after the trial was shown this long
    allow_repeats = false          # may a reader who finished come back for a further session?

    [pools]
    real = ["real/*.nii.gz"]       # files, folders (DICOM series) or globs, relative to this file
    synthetic = ["synthetic/*.nii.gz"]

    [display]
    mode = "axial"                 # "axial" (one slice), "three_planes", "volume" (scrollable axial),
                                   # "reformat" (axial, coronal, sagittal views, each scrollable)
    slice = "middle"               # axial slice: "middle" or a fraction 0..1 of the z extent
    window = "brain"               # a preset name or [lower, upper]
    window_locked = true
    allowed_windows = ["brain", "bone", "subdural"]   # when not locked
    size = 256                     # display grid (pixels, square); every image is resampled to it
    depth = 32                     # slices of the display grid in "volume" mode

    [continuity]
    structures = ["skull", ...]    # default: the 8 structures of Jeong et al. (MICCAI 2023)
    scale = ["discontinuity", "strained continuity", "well-preserved continuity"]

Paths in ``[pools]`` and ``exclude`` are relative to the spec file. The module reads nothing but
the TOML: :func:`resolve_pools` expands the globs and checks the files exist.
"""

from __future__ import annotations

import glob
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ctstudio.errors import ConfigError, InputError

KINDS = ("pair", "continuity")
SAMPLINGS = ("with_replacement", "balanced")
MODES = ("axial", "three_planes", "volume", "reformat")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

#: Jeong et al., MICCAI 2023 (ASCII), Table 2.
DEFAULT_STRUCTURES = (
    "skull",
    "skull base",
    "facial bone",
    "ventricles",
    "brain sulci and fissure",
    "basilar artery",
    "cerebral venous sinus",
    "nerve tracts through the internal capsule",
)
DEFAULT_SCALE = ("discontinuity", "strained continuity", "well-preserved continuity")
#: the shortest time a trial is on screen before an answer is accepted (ms); ``[study] min_view_ms``
DEFAULT_MIN_VIEW_MS = 1000


@dataclass(frozen=True)
class DisplaySpec:
    mode: str = "axial"
    slice: str | float = "middle"
    window: tuple[float, float] = (0.0, 80.0)
    window_name: str = "brain"
    window_locked: bool = True
    allowed_windows: tuple[str, ...] = ()
    size: int = 256
    depth: int = 32


@dataclass(frozen=True)
class StudySpec:
    name: str
    kind: str
    seed: int
    real: tuple[str, ...]
    synthetic: tuple[str, ...]
    pairs_per_reader: int = 10
    cases_per_reader: int = 10
    sampling: str = "with_replacement"
    exclude: tuple[str, ...] = ()
    display: DisplaySpec = field(default_factory=DisplaySpec)
    structures: tuple[str, ...] = DEFAULT_STRUCTURES
    scale: tuple[str, ...] = DEFAULT_SCALE
    description: str = ""
    min_view_ms: int = DEFAULT_MIN_VIEW_MS
    allow_repeats: bool = False
    base_dir: str = "."
    path: str = ""

    @property
    def trials_per_reader(self) -> int:
        return self.pairs_per_reader if self.kind == "pair" else self.cases_per_reader

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["display"] = asdict(self.display)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """A hash of what the spec asks, not where it lies: the same spec copied to another folder (or
        another site's workstation) has the same digest, a changed spec another one."""
        d = self.to_dict()
        d.pop("path", None)
        d.pop("base_dir", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def legacy_digests(self) -> set[str]:
        """Digests that databases written before ``digest`` ignored the folder stored for this spec
        (they hashed ``base_dir`` and had no min_view_ms / allow_repeats): such a study still opens."""
        if (self.min_view_ms, self.allow_repeats) != (DEFAULT_MIN_VIEW_MS, False):
            return set()
        d = self.to_dict()
        for k in ("path", "min_view_ms", "allow_repeats"):
            d.pop(k, None)
        return {hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudySpec":
        d = dict(d)
        disp = dict(d.pop("display", {}))
        disp["window"] = tuple(disp.get("window", (0.0, 80.0)))
        disp["allowed_windows"] = tuple(disp.get("allowed_windows", ()))
        for k in ("real", "synthetic", "exclude", "structures", "scale"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(display=DisplaySpec(**disp), **d)


def _err(path, field_name: str, msg: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"study spec field '{field_name}': {msg}", path=path, hint=hint)


def _get(table: dict, key: str, typ, default, path, where: str):
    if key not in table:
        return default
    val = table[key]
    if typ is int and isinstance(val, bool):
        raise _err(path, f"{where}.{key}", f"expected an integer, got {val!r}")
    if typ is float and isinstance(val, int) and not isinstance(val, bool):
        val = float(val)
    if not isinstance(val, typ):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise _err(path, f"{where}.{key}", f"expected {name}, got {type(val).__name__} {val!r}")
    return val


def _str_list(table: dict, key: str, default, path, where: str) -> tuple[str, ...]:
    val = table.get(key, default)
    if isinstance(val, str):
        val = [val]
    if not isinstance(val, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in val):
        raise _err(path, f"{where}.{key}", f"expected a list of non-empty strings, got {val!r}")
    return tuple(val)


def _check_keys(table: dict, allowed: set[str], path, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown and not where:  # the top level holds tables, e.g. a misspelt [pool]
        raise ConfigError(f"unknown table [{unknown[0]}] in the study spec", path=path,
                          hint=f"the tables are {', '.join(f'[{t}]' for t in sorted(allowed))}")
    if unknown:
        raise _err(path, f"{where}.{unknown[0]}", "unknown field",
                   hint=f"allowed fields in [{where}]: {', '.join(sorted(allowed))}")


def parse_spec(data: dict[str, Any], path: str | Path = "<spec>", base_dir: str | Path | None = None) -> StudySpec:
    """Validate a parsed TOML document; every error names the field."""
    from ctstudio.imaging.window import PRESETS, preset

    _check_keys(data, {"study", "pools", "display", "continuity"}, path, "")
    study = data.get("study")
    if not isinstance(study, dict):
        raise _err(path, "study", "missing [study] table", hint="start the file with [study] name = ... kind = ...")
    _check_keys(study, {"name", "kind", "seed", "pairs_per_reader", "cases_per_reader", "sampling",
                        "exclude", "description", "min_view_ms", "allow_repeats"}, path, "study")
    name = _get(study, "name", str, None, path, "study")
    if not name or not name.strip():
        raise _err(path, "study.name", "missing or empty", hint='add name = "my-study"')
    kind = _get(study, "kind", str, None, path, "study")
    if kind not in KINDS:
        raise _err(path, "study.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    seed = _get(study, "seed", int, None, path, "study")
    if seed is None:
        raise _err(path, "study.seed", "missing", hint="add seed = <an integer>; it fixes every reader's order")
    pairs = _get(study, "pairs_per_reader", int, 10, path, "study")
    cases = _get(study, "cases_per_reader", int, 10, path, "study")
    for k, v in (("pairs_per_reader", pairs), ("cases_per_reader", cases)):
        if not 1 <= v <= 10000:
            raise _err(path, f"study.{k}", f"must be between 1 and 10000, got {v}")
    sampling = _get(study, "sampling", str, "with_replacement", path, "study")
    if sampling not in SAMPLINGS:
        raise _err(path, "study.sampling", f"must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    exclude = _str_list(study, "exclude", [], path, "study")
    description = _get(study, "description", str, "", path, "study")
    min_view_ms = _get(study, "min_view_ms", int, DEFAULT_MIN_VIEW_MS, path, "study")
    if not 0 <= min_view_ms <= 60000:
        raise _err(path, "study.min_view_ms", f"must be between 0 and 60000 ms, got {min_view_ms}",
                   hint="the time a trial is on screen before an answer counts; 1000 (1 s) is usual")
    allow_repeats = _get(study, "allow_repeats", bool, False, path, "study")

    pools = data.get("pools")
    if not isinstance(pools, dict):
        raise _err(path, "pools", "missing [pools] table", hint='add [pools] real = [...] synthetic = [...]')
    _check_keys(pools, {"real", "synthetic"}, path, "pools")
    for k in ("real", "synthetic"):
        if k not in pools:
            raise _err(path, f"pools.{k}", "missing", hint=f'list the {k} cases: {k} = ["folder/*.nii.gz"]')
    real = _str_list(pools, "real", [], path, "pools")
    synthetic = _str_list(pools, "synthetic", [], path, "pools")
    if not real:
        raise _err(path, "pools.real", "empty list")
    if not synthetic:
        raise _err(path, "pools.synthetic", "empty list")

    disp = data.get("display", {})
    if not isinstance(disp, dict):
        raise _err(path, "display", "must be a table")
    _check_keys(disp, {"mode", "slice", "window", "window_locked", "allowed_windows", "size", "depth"},
                path, "display")
    mode = _get(disp, "mode", str, "axial", path, "display")
    if mode not in MODES:
        raise _err(path, "display.mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    slc = disp.get("slice", "middle")
    if isinstance(slc, bool) or not (slc == "middle" or (isinstance(slc, (int, float)) and 0 <= slc <= 1)):
        raise _err(path, "display.slice", f'must be "middle" or a fraction between 0 and 1, got {slc!r}')
    win = disp.get("window", "brain")
    if isinstance(win, str):
        try:
            w = preset(win)
        except InputError:
            raise _err(path, "display.window", f"unknown preset {win!r}",
                       hint=f"choose one of {', '.join(PRESETS)} or give [lower, upper]") from None
        window, window_name = (w.lower, w.upper), w.name
    elif (isinstance(win, list) and len(win) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           for v in win) and win[1] > win[0]):
        window, window_name = (float(win[0]), float(win[1])), f"[{win[0]:g}, {win[1]:g}]"
    else:
        raise _err(path, "display.window", f"must be a preset name or [lower, upper] with upper > lower, got {win!r}")
    locked = _get(disp, "window_locked", bool, True, path, "display")
    allowed = _str_list(disp, "allowed_windows", [], path, "display")
    for a in allowed:
        try:
            preset(a)
        except InputError:
            raise _err(path, "display.allowed_windows", f"unknown preset {a!r}",
                       hint=f"choose from {', '.join(PRESETS)}") from None
    size = _get(disp, "size", int, 256, path, "display")
    if not 16 <= size <= 2048:
        raise _err(path, "display.size", f"must be between 16 and 2048 pixels, got {size}")
    depth = _get(disp, "depth", int, 32, path, "display")
    if not 1 <= depth <= 1024:
        raise _err(path, "display.depth", f"must be between 1 and 1024 slices, got {depth}")

    cont = data.get("continuity", {})
    if not isinstance(cont, dict):
        raise _err(path, "continuity", "must be a table")
    _check_keys(cont, {"structures", "scale"}, path, "continuity")
    structures = _str_list(cont, "structures", list(DEFAULT_STRUCTURES), path, "continuity")
    scale = _str_list(cont, "scale", list(DEFAULT_SCALE), path, "continuity")
    if len(set(structures)) != len(structures) or not structures:
        raise _err(path, "continuity.structures", "must be a non-empty list without duplicates")
    if len(scale) < 2:
        raise _err(path, "continuity.scale", "needs at least two labels")

    base = Path(base_dir) if base_dir is not None else (Path(path).resolve().parent if str(path) != "<spec>" else Path("."))
    return StudySpec(
        name=name.strip(), kind=kind, seed=seed, real=real, synthetic=synthetic, pairs_per_reader=pairs,
        cases_per_reader=cases, sampling=sampling, exclude=exclude,
        display=DisplaySpec(mode=mode, slice=slc, window=window, window_name=window_name, window_locked=locked,
                            allowed_windows=allowed, size=size, depth=depth),
        structures=structures, scale=scale, description=description, min_view_ms=min_view_ms,
        allow_repeats=allow_repeats, base_dir=str(base),
        path=str(path),
    )


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec TOML file."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such study spec file", path=p, hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError("expected a study spec .toml file but found a folder", path=p) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the study spec ({exc.strerror})", path=p) from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not a text file (expected TOML)", path=p) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=p, hint="fix the syntax at the line shown") from None
    return parse_spec(data, path=p.resolve(), base_dir=p.resolve().parent)


@dataclass(frozen=True)
class Case:
    """One image in a pool: its class ('real' / 'synthetic') and resolved path."""

    cls: str
    path: str


def _expand(base: Path, pattern: str) -> list[Path]:
    p = Path(pattern)
    full = p if p.is_absolute() else base / p
    if any(ch in pattern for ch in "*?["):
        return sorted(Path(m) for m in glob.glob(str(full), recursive=True))
    return [full]


def resolve_pools(spec: StudySpec, check_exists: bool = True) -> list[Case]:
    """Expand the pools' globs into cases, drop the exclusions, check the files exist.

    A file in both pools, an empty pool after exclusion, or a missing file is a ConfigError
    that names the field and the path.
    """
    base = Path(spec.base_dir)
    excluded = {str(q.resolve()) for pat in spec.exclude for q in _expand(base, pat)}
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for cls, patterns in (("real", spec.real), ("synthetic", spec.synthetic)):
        n_before = len(cases)
        for pat in patterns:
            matches = _expand(base, pat)
            if not matches:
                raise _err(spec.path, f"pools.{cls}", f"the pattern {pat!r} matches no file (looked in {base})")
            for m in matches:
                key = str(m.resolve())
                if check_exists and not m.exists():
                    raise InputError(f"case file listed in pools.{cls} does not exist", path=m,
                                     hint="fix the path in the spec, or add it to study.exclude")
                if key in excluded:
                    continue
                if key in seen:
                    if seen[key] != cls:
                        raise _err(spec.path, f"pools.{cls}", f"{m} is in both the real and the synthetic pool")
                    continue
                seen[key] = cls
                cases.append(Case(cls, key))
        if len(cases) == n_before:
            raise _err(spec.path, f"pools.{cls}", "no case left after applying study.exclude")
    return cases


def is_2d_image(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)
