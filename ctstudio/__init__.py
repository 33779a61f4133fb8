"""ctstudio: a desktop workbench for synthetic CT.

The core (everything but :mod:`ctstudio.app`) runs headless; only ``ctstudio.app`` touches Qt.

:func:`version_report` is what ``ctstudio --version`` prints: the version, the git commit this copy
was built from (read from the checkout, or from ``BUILD_INFO.json`` that ``packaging/build.sh``
writes into a standalone bundle) and the versions of the heavy libraries. Nothing here imports
torch, Qt or VTK at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: The libraries ``--version`` reports, as (label, module to import, attribute path of its version).
_LIBRARIES = (
    ("torch", "torch", "__version__"),
    ("PySide6", "PySide6", "__version__"),
    ("VTK", "vtkmodules", "__version__"),
)


def _package_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent


def build_info() -> dict:
    """What a standalone bundle recorded when it was built (``{}`` for a source install).

    ``packaging/build.sh`` writes ``ctstudio/BUILD_INFO.json`` into the bundle (never into the source
    tree) with ``commit``, ``dirty``, ``flavour`` ("full" or "reader") and ``built`` (UTC time).
    """
    import json

    path = _package_dir() / "BUILD_INFO.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (``abc1234`` or ``abc1234-dirty``), else None.

    None when the package is not inside a git checkout (an installed wheel, a bundle) or git is absent.
    """
    import subprocess

    root = _package_dir().parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def app_version() -> str:
    """This copy's version for records (a study answer, a model card): ``0.1.0+abc1234def56`` with the
    commit when known (``-dirty`` added for uncommitted changes), else ``0.1.0``. Computed once."""
    global _APP_VERSION
    if _APP_VERSION is None:
        info = build_info()
        commit = info.get("commit") or git_commit()
        if commit and info.get("dirty"):
            commit += "-dirty"
        _APP_VERSION = f"{__version__}+{commit}" if commit else __version__
    return _APP_VERSION


_APP_VERSION: str | None = None


def library_versions() -> dict[str, str]:
    """{"torch": "2.13.0+cpu", "PySide6": "6.11.3", "VTK": "9.7.2"}; "not installed" for a missing one.

    Each library is imported here, on demand, because what counts is what this copy can import
    (a reader-only bundle has no torch even when the machine has one installed elsewhere).
    """
    import importlib

    out: dict[str, str] = {}
    for label, module, attr in _LIBRARIES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            out[label] = "not installed"
            continue
        out[label] = str(getattr(mod, attr, "unknown version"))
    return out


def version_report() -> str:
    """The text of ``ctstudio --version``, one fact per line."""
    import platform
    import sys

    info = build_info()
    commit = app_version().partition("+")[2]
    lines = [f"ctstudio {__version__}"]
    lines.append(f"commit: {commit or 'unknown (not built from a git checkout)'}")
    if info:
        frozen = " (standalone bundle)" if getattr(sys, "frozen", False) else ""
        lines.append(f"build: {info.get('flavour', 'unknown')}{frozen}, built {info.get('built', 'unknown')}")
    lines.append(f"Python: {platform.python_version()}")
    for label, version in library_versions().items():
        lines.append(f"{label}: {version}")
    return "\n".join(lines)
