"""``ctstudio models list [--json]``: the bundled and user models."""

from __future__ import annotations

NAME = "models"
HELP = "list the bundled and user models"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="models_cmd", metavar="ACTION")
    ls = sub.add_parser("list", help="list models (bundled, then $CTSTUDIO_MODELS or ~/.local/share/ctstudio/models)")
    ls.add_argument("--json", action="store_true", help="a JSON list of {name, kind, path, source, ...}")
    ls.add_argument("--kind", help="only this kind (score, icnet, ggcl, cgan, ...)")


def run(args) -> int:
    import json

    from ctstudio.checkpoints import list_models, user_models_dir

    if getattr(args, "models_cmd", None) != "list":
        print("usage: ctstudio models list [--json] [--kind KIND]")
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
