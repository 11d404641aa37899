#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node) from npm: the prebuilt linux/amd64 package, without the
# `@foundry-rs/anvil` wrapper (which runs a postinstall script). Cached outside the repository in
# $OBOL_TOOLS_DIR/chain; exits at once when the pinned binary is already there.
# Tests find it through ANVIL_BIN (printed on stdout by this script).
set -euo pipefail

ANVIL_VERSION=1.7.1
OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
DIR="$OBOL_TOOLS_DIR/chain"
BIN="$DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

log() { printf '[anvil.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

installed_version() { [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | head -n1; }

if installed_version | grep -q "anvil Version: $ANVIL_VERSION"; then
  echo "$BIN"
  exit 0
fi

# Concurrent callers (parallel tests under CI) serialize here; the second one finds the tool.
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9
if installed_version | grep -q "anvil Version: $ANVIL_VERSION"; then
  echo "$BIN"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { log "npm is required (Node 20)"; exit 1; }
start=$(date +%s)
log "installing anvil $ANVIL_VERSION into $DIR"
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-save --no-audit --no-fund --loglevel=error \
  "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" >&2
installed_version | grep -q "anvil Version: $ANVIL_VERSION" || { log "anvil $ANVIL_VERSION did not install"; exit 1; }
log "done in $(( $(date +%s) - start )) s"
echo "$BIN"
