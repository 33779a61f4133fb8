"""Model files: safetensors weights + a JSON config and model card; the bundled-model registry.

A model called ``NAME`` is two files side by side:

* ``NAME.safetensors`` -- every tensor, keys prefixed by the module they belong to (``net.conv.weight``);
* ``NAME.json`` -- ``{"name", "kind", "version", "config": {...}, "card": {...}}``.

Nothing here unpickles anything: a user's file can hold tensors and JSON, never code.
Both files are written atomically (temp file + rename), the JSON last, so a model whose JSON exists is
complete. Models are found in the bundled ``resources/models/`` and in the user folder
(``$CTSTUDIO_MODELS``, else ``~/.local/share/ctstudio/models``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ctstudio.errors import ModelError
from ctstudio.io.atomic import atomic_path

FORMAT_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DIR = ROOT / "resources" / "models"


def user_models_dir() -> Path:
    env = os.environ.get("CTSTUDIO_MODELS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "ctstudio" / "models"


def search_dirs() -> list[Path]:
    return [BUNDLED_DIR, user_models_dir()]


def state_dicts_to_tensors(modules: dict[str, Any]) -> dict[str, Any]:
    """``{"net": module_or_state_dict}`` -> flat ``{"net.key": contiguous cpu tensor}``."""
    import torch

    flat: dict[str, torch.Tensor] = {}
    for mname, mod in modules.items():
        if "." in mname:
            raise ModelError(f"module name {mname!r} must not contain '.'")
        sd = mod.state_dict() if hasattr(mod, "state_dict") else mod
        for k, t in sd.items():
            if not isinstance(t, torch.Tensor):
                raise ModelError(f"{mname}.{k} is not a tensor ({type(t).__name__})")
            flat[f"{mname}.{k}"] = t.detach().to("cpu").contiguous().clone()
    return flat


def save_tensors_json(base: Path, tensors: dict, meta: dict) -> Path:
    """Write ``base.safetensors`` and ``base.json`` so that a crash at any moment leaves the old model or the new one.

    The JSON records the weights' size and SHA-256 and is renamed last: it is the commit record. Before the new
    weights replace old ones, the old weights stay reachable as ``base.safetensors.prev`` (a hard link), so an old
    JSON beside new weights (a crash between the two renames) still loads the old model (:func:`check_pair`).
    """
    from safetensors.torch import save

    base = Path(base)
    st = base.with_name(base.name + ".safetensors")
    js = base.with_name(base.name + ".json")
    prev = st.with_name(st.name + ".prev")
    data = save(tensors)
    meta = {**meta, "weights": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    text = (json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n").encode()
    with atomic_path(js) as tmp_js:  # renamed last, after the weights
        with open(tmp_js, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with atomic_path(st, sync_dir=False) as tmp_st:
            tmp_st.write_bytes(data)
            if st.is_file() and js.is_file():  # keep the old weights for the old JSON until the new JSON is in
                link = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                os.link(st, link)
                os.replace(link, prev)
    with contextlib.suppress(FileNotFoundError):
        prev.unlink()
    return st


def _matches(path: Path, record: dict) -> bool:
    try:
        if path.stat().st_size != record["bytes"]:
            return False
    except OSError:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == record["sha256"]


def check_pair(st: Path, js: Path) -> Path:
    """The weights file to read for this JSON: ``st`` when it is the one the JSON was written with (``"weights"``:
    bytes and SHA-256), else the previous weights kept by an interrupted save (``st.prev``) when they are; a
    ModelError when neither is. JSON files from before the record are not checked."""
    try:
        record = json.loads(js.read_bytes().decode("utf-8")).get("weights")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return st  # read_meta reports a damaged JSON
    if record is None:
        return st
    if (not isinstance(record, dict) or not isinstance(record.get("bytes"), int)
            or not isinstance(record.get("sha256"), str)):
        raise ModelError("the model's JSON field 'weights' is damaged", path=js, hint="re-export the model")
    if _matches(st, record):
        return st
    prev = st.with_name(st.name + ".prev")
    if _matches(prev, record):
        return prev  # a save was interrupted between its two renames: the old model is whole
    size = st.stat().st_size
    raise ModelError(f"the weights file ({size} bytes) is not the one {js.name} was written with "
                     f"({record['bytes']} bytes): the two files are from different saves", path=st,
                     hint="a write was interrupted between the two files, or one was replaced; re-export or "
                          "re-train the model")


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_model(out_dir, name: str, kind: str, modules: dict, config: dict, card: dict | None = None) -> Path:
    """Write ``<out_dir>/<name>.safetensors`` + ``<out_dir>/<name>.json``; returns the safetensors path."""
    if not name or "/" in name or name.startswith("."):
        raise ModelError(f"invalid model name {name!r}")
    tensors = state_dicts_to_tensors(modules)
    meta = {
        "name": name,
        "kind": kind,
        "version": FORMAT_VERSION,
        "modules": sorted(modules),
        "config": dict(config),
        "card": dict(card or {}),
    }
    return save_tensors_json(Path(out_dir) / name, tensors, meta)


def _paths_for(path: Path) -> tuple[Path, Path]:
    name = path.name
    if name.endswith(".safetensors"):
        base = path.with_name(name[: -len(".safetensors")])
    elif name.endswith(".json"):
        base = path.with_name(name[: -len(".json")])
    else:
        base = path
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


#: the fields of a model's JSON and the type each must have (``version``, ``card``, ``modules`` may be absent)
META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "config": (dict,), "card": (dict,), "version": (int,), "modules": (list,),
}
_REQUIRED = ("name", "kind", "config")

#: bytes per element of each safetensors dtype
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
#: the largest header safetensors itself accepts (100 MB)
MAX_HEADER_BYTES = 100_000_000


def read_meta(path) -> dict:
    """The model's JSON, checked: an object with ``name``/``kind`` strings, a ``config`` object, a ``card``
    object and an integer ``version`` no newer than :data:`FORMAT_VERSION`; else a :class:`ModelError`."""
    _, js = _paths_for(Path(path))
    try:
        meta = json.loads(js.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError("the model's JSON file is missing", path=js,
                         hint="a model is NAME.safetensors + NAME.json side by side") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"the model's JSON file cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                         path=js, hint="re-export or re-train the model") from None
    if not isinstance(meta, dict) or not set(_REQUIRED) <= set(meta):
        raise ModelError("the model's JSON lacks name/kind/config", path=js,
                         hint="is this a ctstudio model file?")
    for field, types in META_TYPES.items():
        if field not in meta:
            continue
        value = meta[field]
        if not isinstance(value, types) or isinstance(value, bool):
            raise ModelError(f"the model's JSON field {field!r} is a {type(value).__name__}, not a "
                             f"{' or '.join(t.__name__ for t in types)}", path=js,
                             hint="the file was edited or damaged; re-export or re-train the model")
    if not meta["name"] or not meta["kind"]:
        raise ModelError("the model's JSON has an empty name or kind", path=js, hint="re-export the model")
    if "modules" in meta and not all(isinstance(m, str) for m in meta["modules"]):
        raise ModelError("the model's JSON field 'modules' must list module names", path=js,
                         hint="re-export the model")
    version = meta.get("version", 1)
    if version < 1:
        raise ModelError(f"model format version {version} is not valid", path=js, hint="re-export the model")
    if version > FORMAT_VERSION:
        raise ModelError(f"model format version {version} is newer than this ctstudio understands "
                         f"({FORMAT_VERSION})", path=js, hint="update ctstudio")
    meta.setdefault("card", {})
    return meta


def check_safetensors(st: Path) -> dict:
    """Validate a safetensors file's header against the file before any tensor is read; returns the header.

    Checked: the 8-byte header length fits the file (and safetensors' 100 MB limit); the header is a JSON
    object of tensors, each with a known dtype, a shape of non-negative integers and ``data_offsets``
    ``[begin, end]`` inside the data part, whose length equals shape x dtype size; the tensors tile the data
    part without gaps or overlaps. A declared huge tensor is therefore refused by its byte count (it cannot be
    backed by the file), never allocated. Any failure is a :class:`ModelError` naming the file.
    """
    def bad(what: str) -> ModelError:
        return ModelError(f"the weights file is malformed: {what}", path=st,
                          hint="the file is truncated, damaged or not safetensors; re-download or re-train")

    try:
        size = st.stat().st_size
        with open(st, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise bad(f"{size} bytes, shorter than the 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > size - 8:
                raise bad(f"the header declares {n} bytes but the file has only {size - 8} after the length")
            if n > MAX_HEADER_BYTES:
                raise bad(f"the header declares {n} bytes (more than {MAX_HEADER_BYTES})")
            raw = fh.read(n)
    except OSError as exc:
        raise ModelError(f"the weights file cannot be read ({exc.strerror or exc})", path=st) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"the header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    data_size = size - 8 - n
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise bad("__metadata__ must map names to strings")
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {key!r} is not described by an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {key!r} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise bad(f"tensor {key!r} has an invalid shape {shape!r}"[:300])
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise bad(f"tensor {key!r} has invalid data_offsets {offsets!r}"[:300])
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise bad(f"tensor {key!r} lies at bytes {begin}..{end}, outside the {data_size} data bytes")
        count = 1
        for d in shape:
            count *= d
        if count * SAFETENSORS_DTYPES[dtype] != end - begin:
            raise bad(f"tensor {key!r} declares shape {shape} of {dtype} "
                      f"({count * SAFETENSORS_DTYPES[dtype]} bytes) but holds {end - begin} bytes"[:300])
        spans.append((begin, end, key))
    spans.sort()
    at = 0
    for begin, end, key in spans:
        if begin != at:
            raise bad(f"tensor {key!r} starts at byte {begin}, expected {at} (a gap or an overlap)")
        at = end
    if at != data_size:
        raise bad(f"the tensors cover {at} of {data_size} data bytes")
    return header


def load_tensors(path) -> dict:
    """Every tensor of a model's ``.safetensors`` (on the CPU), after :func:`check_safetensors`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    st, _ = _paths_for(Path(path))
    if not st.is_file():
        raise ModelError("the model's weights file is missing", path=st,
                         hint="a model is NAME.safetensors + NAME.json side by side")
    check_safetensors(st)
    js = _paths_for(Path(path))[1]
    if js.is_file():
        st = check_pair(st, js)
        if st.name.endswith(".prev"):
            check_safetensors(st)
    try:
        return load_file(str(st), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"the weights file is malformed ({exc})", path=st,
                         hint="the file is truncated or not safetensors; re-download or re-train") from None


def load_model(path_or_name, kind: str | None = None) -> tuple[dict, dict]:
    """``(meta, tensors)`` of a model given by path (either file, or the base name) or registry name."""
    path = resolve_model(path_or_name, kind=kind)
    meta = read_meta(path)
    if kind is not None and meta["kind"] != kind:
        raise ModelError(f"this is a {meta['kind']!r} model, but a {kind!r} model is needed", path=path,
                         hint=f"`ctstudio models list` shows the {kind} models")
    tensors = load_tensors(path)
    meta["path"] = str(_paths_for(Path(path))[0])
    return meta, tensors


def module_state(tensors: dict, module: str) -> dict:
    """The state dict of one module out of a flat tensor dict."""
    prefix = module + "."
    sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not sd:
        raise ModelError(f"the model file holds no weights for module {module!r}")
    return sd


def load_into(module, tensors: dict, name: str, path=None) -> None:
    """``module.load_state_dict`` of ``name``'s tensors, with a clear ModelError on any mismatch."""
    sd = module_state(tensors, name)
    on_meta = any(t.is_meta for t in [*module.parameters(), *module.buffers()])
    try:
        # a network built on the meta device (config_fields) takes the file's tensors as they are: no memory is
        # spent on a network the file does not fill, however large its config claims it is
        module.load_state_dict(sd, strict=True, assign=on_meta)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"the weights do not fit the network ({'; '.join(first[:3])})", path=path,
                         hint="the JSON config and the weights disagree; re-export the model") from None
    if on_meta and any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        raise ModelError("the model file does not hold every tensor of the network", path=path,
                         hint="the JSON config and the weights disagree; re-export the model")


@contextlib.contextmanager
def config_fields(meta: dict, what: str, kind: str | None = None):
    """Read a model's config inside ``with``: a missing or mistyped field becomes a :class:`ModelError`.

    Networks built inside the ``with`` are built on torch's meta device (no memory); :func:`load_modules` then
    gives them the file's tensors, so a config declaring a huge network never allocates it."""
    import torch

    try:
        with torch.device("meta"):
            yield meta["config"]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise ModelError(f"the {what}'s config is incomplete ({type(exc).__name__}: {str(exc)[:200]})",
                         path=meta.get("path"),
                         hint=f"re-export the model with `ctstudio train {kind or meta.get('kind', '')}`") from None
    except (MemoryError, RuntimeError) as exc:  # a network the config sizes impossibly (negative or huge)
        raise ModelError(f"the {what}'s config describes a network that cannot be built "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})",
                         path=meta.get("path"), hint="the JSON config was edited or damaged; re-export the model") \
            from None


def load_modules(meta: dict, tensors: dict, modules: dict, device="cpu") -> None:
    """Load each named module's weights from ``tensors``, then put it in eval mode, frozen, on ``device``."""
    for name, module in modules.items():
        load_into(module, tensors, name, path=meta.get("path"))
        module.eval().to(device)
        for p in module.parameters():
            p.requires_grad_(False)


def _candidates(name: str) -> list[Path]:
    out = []
    for d in search_dirs():
        out.append(d / f"{name}.json")
    return out


def resolve_model(name_or_path, kind: str | None = None) -> Path:
    """The ``.safetensors`` path of a model given by name (bundled or user) or by a path."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.suffix in (".safetensors", ".json") or os.sep in s or p.exists():
        st, js = _paths_for(p)
        if not js.exists() and not st.exists():
            raise ModelError("no model file here", path=p,
                             hint="give NAME.safetensors (with NAME.json beside it) or a model name "
                                  "from `ctstudio models list`")
        return st
    for js in _candidates(s):
        if js.exists():
            return _paths_for(js)[0]
    names = [m["name"] for m in list_models() if kind is None or m["kind"] == kind]
    raise ModelError(f"no model named {s!r}", hint=("known models: " + ", ".join(names)) if names
                     else "no models installed; train one with `ctstudio train`")


def list_models() -> list[dict]:
    """Every model found (bundled first), as dicts with name, kind, path, source, description."""
    out = []
    seen = set()
    for source, d in (("bundled", BUNDLED_DIR), ("user", user_models_dir())):
        if not d.is_dir():
            continue
        for js in sorted(d.glob("*.json")):
            st = _paths_for(js)[0]
            if not st.exists():
                continue
            try:
                meta = read_meta(js)
            except ModelError:
                continue
            card = meta.get("card", {})
            key = (meta["name"], source)
            if key in seen:
                continue
            seen.add(key)
            out.append({
                "name": meta["name"],
                "kind": meta["kind"],
                "path": str(st),
                "source": source,
                "description": card.get("summary", ""),
                "size_mb": round(st.stat().st_size / 1e6, 2),
            })
    return out
