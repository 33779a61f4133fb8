#!/usr/bin/env bash
# Create or reuse the local virtual environment .venv and install ctstudio with its pinned
# dependencies. Reinstalls only when pyproject.toml changed since the last install.
# Usage: scripts/bootstrap.sh [--dev]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
    echo "ctstudio: creating .venv with $($py --version)" >&2
    "$py" -m venv .venv
fi
stamp=".venv/.stamp-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-dev}"
if [ ! -e "$stamp" ]; then
    echo "ctstudio: installing pinned dependencies into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    rm -f .venv/.stamp-*
    touch "$stamp"
fi
