#!/usr/bin/env bash
# Install Omniboard (npm package `omniboard`) once into a cache folder for the end-to-end tests.
# Idempotent: skipped when the pinned version is already installed. ~1 min, ~530 MB.
#   SEM_OMNIBOARD_DIR   install prefix (default: ~/.cache/sem-test/omniboard)
# The tests find the binary at $SEM_OMNIBOARD_DIR/node_modules/.bin/omniboard.
set -euo pipefail

VERSION="2.16.1"
PREFIX="${SEM_OMNIBOARD_DIR:-$HOME/.cache/sem-test/omniboard}"
BIN="$PREFIX/node_modules/.bin/omniboard"
STAMP="$PREFIX/.installed-$VERSION"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
    echo "omniboard $VERSION already installed in $PREFIX"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "npm not found: installing Debian packages nodejs and npm"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
    else
        echo "npm not found and no apt-get: install Node.js >= 18 with npm, then rerun $0" >&2
        exit 1
    fi
fi

mkdir -p "$PREFIX"
cd "$PREFIX"
[[ -f package.json ]] || echo '{"name": "sem-test-omniboard", "private": true}' > package.json
echo "installing omniboard $VERSION into $PREFIX (about a minute)"
npm install --no-audit --no-fund --loglevel=error "omniboard@$VERSION"
test -x "$BIN"
touch "$STAMP"
echo "omniboard installed: $BIN"
