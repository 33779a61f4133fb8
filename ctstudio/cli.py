"""The ``ctstudio`` command line: one entry point, one subcommand per module in ``ctstudio.commands``.

* ``ctstudio`` opens the app; ``ctstudio PATH`` opens the app on that volume.
* ``ctstudio SUBCOMMAND --help`` describes each subcommand.

Each module in :mod:`ctstudio.commands` defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; adding a subcommand is adding a module. A :class:`~ctstudio.errors.CTStudioError`
is printed as ``error: <message>`` and exits with status 2; nothing else reaches the user as a traceback
unless ``CTSTUDIO_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType

from ctstudio import __version__
from ctstudio.errors import Cancelled, CTStudioError


def _command_modules() -> dict[str, ModuleType]:
    import ctstudio.commands as pkg

    mods = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"ctstudio.commands.{info.name}")
        mods[mod.NAME] = mod
    return mods


def build_parser(mods: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    mods = _command_modules() if mods is None else mods
    parser = argparse.ArgumentParser(
        prog="ctstudio",
        description="A workbench for synthetic CT. With no subcommand, opens the app "
        "(on PATH when one is given: `ctstudio PATH`).",
    )
    parser.add_argument("--version", action="version", version=f"ctstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in mods.items():
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mods = _command_modules()
    # `ctstudio PATH` (or nothing at all) opens the app.
    if not argv or (argv[0] not in mods and not argv[0].startswith("-")):
        argv = ["app", *argv]
    parser = build_parser(mods)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except CTStudioError as exc:
        if os.environ.get("CTSTUDIO_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
