"""One model loader for every kind, and a cache so a model is loaded once and reused.

``load_model(name_or_path, kind=None, device="auto")`` reads the model's JSON (its kind), then calls the
loader registered for that kind and returns a :class:`LoadedModel`. The window's model panel and every
pipeline go through here; a loaded model is kept (keyed by file, its modification time and the device) until
:func:`clear_cache`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ctstudio import checkpoints
from ctstudio.errors import ModelError
from ctstudio.pipelines.devices import resolve_device

#: the bundled demo models (resources/models/), by kind
DEFAULTS = {"score": "score-k2-demo", "icnet": "icnet-demo"}


@dataclass(frozen=True)
class ScoreBundle:
    """A score model ready to sample: the network, its SDE and its meta (k, hu_range, image_size...)."""

    model: Any
    sde: Any
    meta: dict


@dataclass(frozen=True)
class LoadedModel:
    name: str
    kind: str
    path: str
    device: str
    meta: dict  # the model's JSON (config, card) plus the loader's fields
    runner: Any  # ScoreBundle | ICNetCalibrator | KernelConverter | CGANModel

    @property
    def card(self) -> dict:
        return self.meta.get("card", {})


def _load_score(path: str, device: str) -> tuple[Any, dict]:
    from ctstudio.diffusion.loading import load_score_model

    model, sde, meta = load_score_model(path, device=device)
    return ScoreBundle(model, sde, meta), meta


def _load_icnet(path: str, device: str) -> tuple[Any, dict]:
    from ctstudio.diffusion.calibrate import ICNetCalibrator
    from ctstudio.diffusion.loading import load_icnet

    net, meta = load_icnet(path, device=device)
    return ICNetCalibrator(net, meta["roi"], meta["name"], device), meta


def _load_ggcl(path: str, device: str) -> tuple[Any, dict]:
    from ctstudio.translation.kernels import KernelConverter

    conv = KernelConverter.load(path, device=device)
    return conv, conv.meta


def _load_cgan(path: str, device: str) -> tuple[Any, dict]:
    from ctstudio.translation.cgan import CGANModel

    model = CGANModel.load(path, device=device)
    return model, model.meta


#: kind -> loader(path, device) -> (runner, meta)
LOADERS: dict[str, Callable[[str, str], tuple[Any, dict]]] = {
    "score": _load_score, "icnet": _load_icnet, "ggcl": _load_ggcl, "cgan": _load_cgan,
}

_CACHE: dict[tuple, LoadedModel] = {}
_LOCK = threading.Lock()


def load_model(name_or_path, kind: str | tuple[str, ...] | None = None, device: str | None = "auto",
               purpose: str = "this job") -> LoadedModel:
    """The model ``name_or_path`` (a registry name or a file), checked to be of ``kind`` (one or several);
    ``purpose`` names what needs it in the error message (e.g. "`ctstudio convert`", "the Generate tab")."""
    path = checkpoints.resolve_model(name_or_path, kind=kind if isinstance(kind, str) else None)
    meta = checkpoints.read_meta(path)
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and meta["kind"] not in wanted:
        raise ModelError(f"this is a {meta['kind']!r} model; {purpose} takes {' or '.join(wanted)} models",
                         path=path, hint="`ctstudio models list` shows each model's kind")
    loader = LOADERS.get(meta["kind"])
    if loader is None:
        raise ModelError(f"unknown model kind {meta['kind']!r}", path=path,
                         hint=f"ctstudio runs models of kind {', '.join(sorted(LOADERS))}")
    dev = resolve_device(device)
    st = Path(path)
    try:
        stamp = (st.stat().st_mtime_ns, st.stat().st_size)
    except OSError:
        stamp = None
    key = (str(st.resolve()), stamp, dev)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    runner, full = loader(str(path), dev)
    loaded = LoadedModel(str(full.get("name", meta["name"])), meta["kind"], str(path), dev, full, runner)
    with _LOCK:
        _CACHE[key] = loaded
    return loaded


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
