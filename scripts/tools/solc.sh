#!/usr/bin/env bash
# Installs solc-js (the Solidity compiler as JavaScript, runs offline) from npm into
# $OBOL_TOOLS_DIR/solc-<version> (safe to run concurrently: see lib.sh). Prints the node_modules
# directory, to be used as NODE_PATH for contracts/compile.js:
#
#   NODE_PATH="$(scripts/tools/solc.sh)" node contracts/compile.js && git diff --exit-code contracts/out
set -euo pipefail
TOOL=solc.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOLC_VERSION=0.8.37
DEST="$OBOL_TOOLS_DIR/solc-$SOLC_VERSION"

is_installed() {
  [ -f "$1/node_modules/solc/package.json" ] &&
    [ "$(node -p "require('$1/node_modules/solc/package.json').version" 2>/dev/null)" = "$SOLC_VERSION" ]
}

install() {
  command -v npm >/dev/null 2>&1 || { log "npm is required (apt-get install nodejs npm)"; return 1; }
  log "installing solc-js $SOLC_VERSION from npm"
  npm install --prefix "$1" --no-save --no-audit --no-fund --loglevel=error "solc@$SOLC_VERSION" >&2
}

install_once "solc-$SOLC_VERSION" "$DEST" is_installed install
echo "$DEST/node_modules"
