#!/usr/bin/env bash
# Installs the official x402 v1 client (tools/x402-v1-client: npm x402-fetch 1.2.0 on x402 1.2.0,
# pinned by its lockfile) into $OBOL_TOOLS_DIR/x402-v1-client-<lockfile hash> (safe to run
# concurrently: see lib.sh) and prints that directory (node_modules inside). Its dependency tree
# is large (wagmi, Solana), so it is installed once per lockfile and cached.
set -euo pipefail
TOOL=x402-v1-client.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

src="$here/../../tools/x402-v1-client"
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
DEST="$OBOL_TOOLS_DIR/x402-v1-client-$hash"

is_installed() { [ -f "$1/.installed" ]; }

install() {
  command -v npm >/dev/null 2>&1 || { log "npm is required (apt-get install nodejs npm)"; return 1; }
  cp "$src/package.json" "$src/package-lock.json" "$1/"
  log "npm ci (x402-fetch 1.2.0, once per lockfile)"
  # No install scripts: nothing the payment path needs is native, and some wallet-connector
  # packages of the tree try to build optional native modules.
  (cd "$1" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  touch "$1/.installed"
}

install_once "x402-v1-client-$hash" "$DEST" is_installed install
echo "$DEST"
