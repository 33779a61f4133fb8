"""``ctstudio models list [--json]``: the bundled and user models; ``ctstudio models add RUN_OR_FILE``: register one."""

from __future__ import annotations

NAME = "models"
HELP = "list the bundled and user models, register a trained one"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="models_cmd", metavar="ACTION")
    ls = sub.add_parser("list", help="list models (bundled, then $CTSTUDIO_MODELS or ~/.local/share/ctstudio/models)")
    ls.add_argument("--json", action="store_true", help="a JSON list of {name, kind, path, source, ...}")
    ls.add_argument("--kind", help="only this kind (score, icnet, ggcl, cgan, ...)")
    add = sub.add_parser("add", help="copy a training run's finished model (or a model file) into the user models")
    add.add_argument("source", metavar="RUN_OR_FILE", help="a run folder (ctstudio train --out) or NAME.safetensors")
    add.add_argument("--name", help="the name to register it under (default: the model's own)")
    add.add_argument("--overwrite", action="store_true", help="replace a user model of that name")


def run(args) -> int:
    import json

    from ctstudio.checkpoints import list_models, user_models_dir

    cmd = getattr(args, "models_cmd", None)
    if cmd == "add":
        from pathlib import Path

        from ctstudio.checkpoints import read_meta
        from ctstudio.pipelines.register import register_model

        path = register_model(Path(args.source), name=args.name, overwrite=args.overwrite)
        meta = read_meta(path)
        print(f"registered {meta['name']} ({meta['kind']}): {path}")
        return 0
    if cmd != "list":
        print("usage: ctstudio models list [--json] [--kind KIND] | ctstudio models add RUN_OR_FILE [--name NAME] "
              "[--overwrite]")
        return 2
    models = [m for m in list_models() if not args.kind or m["kind"] == args.kind]
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print(f"no models found (bundled, or in {user_models_dir()})")
        return 0
    w = max(len(m["name"]) for m in models)
    for m in models:
        print(f"{m['name']:<{w}}  {m['kind']:<6} {m['source']:<7} {m['size_mb']:>6.2f} MB  {m['description']}")
    return 0
