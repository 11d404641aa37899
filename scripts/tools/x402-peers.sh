#!/usr/bin/env bash
# Installs the pinned third-party x402 peers (tools/x402-peers: the official reference packages
# from npm) into $OBOL_TOOLS_DIR/x402-peers-<lockfile hash> (safe to run concurrently: see lib.sh)
# and prints that directory.
set -euo pipefail
TOOL=x402-peers.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

src="$here/../../tools/x402-peers"
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
DEST="$OBOL_TOOLS_DIR/x402-peers-$hash"

is_installed() { [ -f "$1/.installed" ]; }

install() {
  command -v npm >/dev/null 2>&1 || { log "npm is required (apt-get install nodejs npm)"; return 1; }
  cp "$src/package.json" "$src/package-lock.json" "$1/"
  log "npm ci (x402 reference packages)"
  (cd "$1" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$1/.installed"
}

install_once "x402-peers-$hash" "$DEST" is_installed install
echo "$DEST"
