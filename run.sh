#!/usr/bin/env bash
# Run ctstudio. With no arguments it opens the app on the bundled sample volume;
# any arguments are passed to the `ctstudio` command line (try ./run.sh --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh"
if [ "$#" -eq 0 ]; then
    exec "$root/.venv/bin/ctstudio" "$root/resources/sample/headsq_hu.nii.gz"
fi
exec "$root/.venv/bin/ctstudio" "$@"
