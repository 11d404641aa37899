#!/usr/bin/env bash
# Installs solc-js (the Solidity compiler as JavaScript, runs offline) from npm into
# $OBOL_TOOLS_DIR/solc; exits at once when the pinned version is already there. Prints the
# node_modules directory, to be used as NODE_PATH for contracts/compile.js:
#
#   NODE_PATH="$(scripts/tools/solc.sh)" node contracts/compile.js && git diff --exit-code contracts/out
set -euo pipefail

SOLC_VERSION=0.8.37
OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
DIR="$OBOL_TOOLS_DIR/solc"
MODULES="$DIR/node_modules"

log() { printf '[solc.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

installed_version() {
  [ -f "$MODULES/solc/package.json" ] && node -p "require('$MODULES/solc/package.json').version" 2>/dev/null
}

if [ "$(installed_version || true)" = "$SOLC_VERSION" ]; then
  echo "$MODULES"
  exit 0
fi

# Concurrent callers (parallel tests under CI) serialize here; the second one finds the tool.
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9
if [ "$(installed_version || true)" = "$SOLC_VERSION" ]; then
  echo "$MODULES"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { log "npm is required (Node 20)"; exit 1; }
start=$(date +%s)
log "installing solc-js $SOLC_VERSION into $DIR"
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-save --no-audit --no-fund --loglevel=error "solc@$SOLC_VERSION" >&2
[ "$(installed_version || true)" = "$SOLC_VERSION" ] || { log "solc $SOLC_VERSION did not install"; exit 1; }
log "done in $(( $(date +%s) - start )) s"
echo "$MODULES"
