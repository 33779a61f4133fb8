"""The recipe registry: model kind -> ``"module:factory"``.

A factory is ``build(config: str, data_dir: Path | None) -> Recipe`` where ``config`` is ``"tiny"``,
``"paper"``, ``"demo"`` or a path to a JSON file of config fields. ``ctstudio train KIND`` dispatches here.
Adding a model kind is adding a line.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ctstudio.errors import ConfigError

RECIPES: dict[str, str] = {
    "score": "ctstudio.training.recipe_score:build",
    "icnet": "ctstudio.training.recipe_icnet:build",
    "ggcl": "ctstudio.training.recipe_ggcl:build",
    "cgan": "ctstudio.training.recipe_cgan:build",
}


def build_recipe(kind: str, config: str, data_dir=None):
    """Instantiate the recipe for ``kind`` (a clear ConfigError for an unknown kind)."""
    if kind not in RECIPES:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(sorted(RECIPES))}")
    mod_name, fn = RECIPES[kind].split(":")
    factory = getattr(importlib.import_module(mod_name), fn)
    return factory(config, Path(data_dir) if data_dir is not None else None)


def load_config(cls, config: str):
    """A config dataclass from a preset name (a classmethod of ``cls``) or a JSON file of fields.

    A JSON file is ``{"base": "tiny" | "demo" | "paper", ...overrides}``: it must name the preset it starts
    from (a file without one would silently train the ``tiny`` test preset).
    """
    import dataclasses
    import json

    presets = [n for n in ("tiny", "demo", "paper") if hasattr(cls, n)]
    if config in presets:
        return getattr(cls, config)()
    p = Path(config)
    if not p.is_file():
        raise ConfigError(f"config {config!r} is neither a preset ({', '.join(presets)}) nor a JSON file",
                          path=p if p.suffix else None)
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the config ({exc})", path=p) from None
    if not isinstance(d, dict):
        raise ConfigError("the config must be a JSON object of fields", path=p)
    if "base" not in d:
        raise ConfigError("the config file does not name its base preset", path=p,
                          hint=f'add "base": one of {", ".join(repr(n) for n in presets)} (the preset whose '
                               "settings the file's fields override)")
    base = d.pop("base")
    if base not in presets:
        raise ConfigError(f"unknown base preset {base!r}", path=p, hint=f"the presets are: {', '.join(presets)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown config fields: {', '.join(unknown)}", path=p,
                          hint=f"known fields: {', '.join(sorted(names))}")
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    return dataclasses.replace(getattr(cls, base)(), **d)
