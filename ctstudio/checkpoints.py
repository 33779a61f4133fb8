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
import json
import os
from pathlib import Path
from typing import Any

from ctstudio.errors import ModelError
from ctstudio.io.atomic import atomic_write_bytes

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
    """Write ``base.safetensors`` and ``base.json`` atomically (tensors first, JSON last)."""
    from safetensors.torch import save

    base = Path(base)
    st = base.with_name(base.name + ".safetensors")
    js = base.with_name(base.name + ".json")
    atomic_write_bytes(st, save(tensors))
    atomic_write_bytes(js, (json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n").encode())
    return st


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


def read_meta(path) -> dict:
    _, js = _paths_for(Path(path))
    try:
        meta = json.loads(js.read_text())
    except FileNotFoundError:
        raise ModelError("the model's JSON file is missing", path=js,
                         hint="a model is NAME.safetensors + NAME.json side by side") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"the model's JSON file cannot be read ({exc})", path=js,
                         hint="re-export or re-train the model") from None
    if not isinstance(meta, dict) or not {"name", "kind", "config"} <= set(meta):
        raise ModelError("the model's JSON lacks name/kind/config", path=js,
                         hint="is this a ctstudio model file?")
    if int(meta.get("version", 1)) > FORMAT_VERSION:
        raise ModelError(f"model format version {meta['version']} is newer than this ctstudio understands "
                         f"({FORMAT_VERSION})", path=js, hint="update ctstudio")
    return meta


def load_tensors(path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    st, _ = _paths_for(Path(path))
    if not st.is_file():
        raise ModelError("the model's weights file is missing", path=st,
                         hint="a model is NAME.safetensors + NAME.json side by side")
    try:
        return load_file(str(st), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
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
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"the weights do not fit the network ({'; '.join(first[:3])})", path=path,
                         hint="the JSON config and the weights disagree; re-export the model") from None


@contextlib.contextmanager
def config_fields(meta: dict, what: str, kind: str | None = None):
    """Read a model's config inside ``with``: a missing or mistyped field becomes a :class:`ModelError`."""
    try:
        yield meta["config"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the {what}'s config is incomplete ({type(exc).__name__}: {exc})", path=meta.get("path"),
                         hint=f"re-export the model with `ctstudio train {kind or meta.get('kind', '')}`") from None


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
