#!/usr/bin/env bash
# Run the whole ctstudio test suite. Creates/reuses .venv, installs the pinned dependencies
# and, when missing, the system packages the real-window tests need (Xvfb; run as root).
# Extra arguments go to pytest (e.g. ./test.sh tests/core -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh" --dev
"$root/scripts/system-packages.sh"
export QT_QPA_PLATFORM=offscreen
export VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
