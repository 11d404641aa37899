#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node) from npm: the prebuilt linux/amd64 package, without the
# `@foundry-rs/anvil` wrapper (which runs a postinstall script), into $OBOL_TOOLS_DIR/anvil-<version>
# (safe to run concurrently: see lib.sh). Prints the binary's path; tests find it through
# ANVIL_BIN.
set -euo pipefail
TOOL=anvil.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ANVIL_VERSION=1.7.1
DEST="$OBOL_TOOLS_DIR/anvil-$ANVIL_VERSION"
bin() { echo "$1/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"; }

is_installed() {
  local v
  [ -x "$(bin "$1")" ] && v=$("$(bin "$1")" --version 2>/dev/null) && [[ "$v" == *"anvil Version: $ANVIL_VERSION"* ]]
}

install() {
  command -v npm >/dev/null 2>&1 || { log "npm is required (apt-get install nodejs npm)"; return 1; }
  log "installing anvil $ANVIL_VERSION from npm"
  npm install --prefix "$1" --no-save --no-audit --no-fund --loglevel=error \
    "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" >&2
}

install_once "anvil-$ANVIL_VERSION" "$DEST" is_installed install
bin "$DEST"
