"""Register a trained model: copy a run's finished model (``NAME.safetensors`` + ``NAME.json``) into the user
models folder (:func:`ctstudio.checkpoints.user_models_dir`), where every models panel and ``--model NAME`` find it.

The source is a run folder (its final model: the one its last ``done`` event names, else the only model file
pair in it) or a model file. Both files are checked first (the JSON's fields, the weights against the size and
SHA-256 the JSON records, the safetensors header). The card gains what the run knows beyond it: the last
losses logged, the data summary of the Train tab's scan, where and when it was registered. The copy is written
with the same crash-safe writer as every model (weights first, the JSON last). An existing user model of the
same name is replaced only with ``overwrite``; a bundled model's name is refused (a name would then mean two
models). No Qt; safetensors are read as tensors, nothing is unpickled.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ctstudio import checkpoints
from ctstudio.errors import InputError, ModelError

EVENTS_FILE = "events.jsonl"


def run_model(run: Path) -> Path:
    """The final model (``.safetensors``) of the run folder ``run``."""
    run = Path(run)
    pairs = sorted(p for p in run.glob("*.safetensors") if p.with_suffix(".json").is_file())
    done = _last_event(run, "done")
    if done and done.get("path") and not done.get("cancelled"):
        named = Path(done["path"])
        named = named if named.is_absolute() else run / named.name
        if named.is_file() and named.with_suffix(".json").is_file():
            return named
    if len(pairs) == 1:
        return pairs[0]
    if not pairs:
        raise InputError("this run has no finished model yet (no NAME.safetensors + NAME.json)", path=run,
                         hint="let the run finish (or continue it), then register it")
    raise InputError(f"this run folder holds {len(pairs)} models ({', '.join(p.name for p in pairs)})", path=run,
                     hint="give the model file itself")


def _events(run: Path) -> list[dict]:
    from ctstudio.training.events import parse_line

    try:
        lines = (Path(run) / EVENTS_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ev for ev in map(parse_line, lines) if ev is not None]


def _last_event(run: Path, stage: str) -> dict | None:
    found = [ev for ev in _events(run) if ev.get("stage") == stage]
    return found[-1] if found else None


def source_model(source: Path) -> tuple[Path, Path | None]:
    """(the model's ``.safetensors``, its run folder or ``None``) for a run folder or a model file."""
    source = Path(source).expanduser()
    if source.is_dir():
        return run_model(source), source
    if not source.exists():
        raise InputError("no such run folder or model file", path=source,
                         hint="give a training run folder (ctstudio train --out) or NAME.safetensors")
    st = checkpoints.resolve_model(source)
    run = st.parent if (st.parent / EVENTS_FILE).is_file() else None
    return st, run


def registered_path(name: str, models_dir: Path | None = None) -> Path:
    return Path(models_dir or checkpoints.user_models_dir()) / f"{name}.safetensors"


def check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise InputError(f"{name!r} is not a usable model name",
                         hint="letters, digits, '-', '_' and '.', not starting with '.'")
    bundled = checkpoints.BUNDLED_DIR / f"{name}.json"
    if bundled.exists():
        raise InputError(f"{name!r} is the name of a bundled model", path=bundled, hint="choose another name")


def register_model(source: Path, name: str | None = None, overwrite: bool = False,
                   models_dir: Path | None = None) -> Path:
    """Copy the model of ``source`` (run folder or model file) into the user models folder; returns the new
    ``.safetensors`` path. An existing model of that name: :class:`InputError` unless ``overwrite``."""
    from safetensors.torch import load_file

    st, run = source_model(source)
    js = st.with_suffix(".json")
    meta = checkpoints.read_meta(js)
    weights = checkpoints.check_pair(st, js)
    checkpoints.check_safetensors(weights)
    name = name or meta["name"]
    check_name(name)
    target = registered_path(name, models_dir)
    if target.resolve() == st.resolve():
        raise InputError("this model is already the registered one", path=st)
    if (target.exists() or target.with_suffix(".json").exists()) and not overwrite:
        raise InputError(f"a user model named {name!r} exists already", path=target,
                         hint="choose another name, or replace it (--overwrite)")
    card = dict(meta.get("card") or {})
    if run is not None:
        step = _last_event(run, "step")
        if step is not None:
            card["last_losses"] = {"step": step.get("done"), **(step.get("losses") or {"loss": step.get("loss")})}
        start = _last_event(run, "start")
        if start is not None and start.get("processes"):
            card["processes"] = start["processes"]
        try:
            spec = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            spec = {}
        if isinstance(spec, dict) and spec.get("data_summary"):
            card["data_summary"] = spec["data_summary"]
    card["registered"] = {"from": str(run or st), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    new_meta = {k: v for k, v in meta.items() if k != "weights"}
    new_meta.update(name=name, card=card)
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own errors for damaged files
        raise ModelError(f"the weights cannot be read ({exc})", path=weights, hint="re-train or re-export") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    return checkpoints.save_tensors_json(target.with_suffix(""), tensors, new_meta)
