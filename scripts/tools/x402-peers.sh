#!/usr/bin/env bash
# Installs the pinned third-party x402 peers (tools/x402-peers: the official reference packages
# from npm) into $OBOL_TOOLS_DIR/x402-peers-<lockfile hash> and prints that directory.
# Exits early when that exact lockfile is installed already.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/../../tools/x402-peers"
OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
dest="$OBOL_TOOLS_DIR/x402-peers-$hash"
if [ -f "$dest/.installed" ]; then
  echo "$dest"
  exit 0
fi
command -v npm >/dev/null || { echo "x402-peers.sh: npm is required (Node.js 20)" >&2; exit 1; }
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
cp "$src/package.json" "$src/package-lock.json" "$dest.tmp/"
echo "[x402-peers] npm ci into $dest" >&2
(cd "$dest.tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
rm -rf "$dest" && mv "$dest.tmp" "$dest"
touch "$dest/.installed"
echo "$dest"
