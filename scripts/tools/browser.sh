#!/usr/bin/env bash
# Installs the pinned browser driver (tools/browser: playwright-core from npm, the API only; it
# downloads no browser, the tests use Debian's chromium from chromium.sh) into
# $OBOL_TOOLS_DIR/browser-<lockfile hash> (safe to run concurrently: see lib.sh) and prints that
# directory.
set -euo pipefail
TOOL=browser.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

src="$here/../../tools/browser"
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
DEST="$OBOL_TOOLS_DIR/browser-$hash"

is_installed() { [ -f "$1/.installed" ] && [ -f "$1/node_modules/playwright-core/package.json" ]; }

install() {
  command -v npm >/dev/null 2>&1 || { log "npm is required (apt-get install nodejs npm)"; return 1; }
  cp "$src/package.json" "$src/package-lock.json" "$1/"
  log "npm ci (playwright-core)"
  (cd "$1" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$1/.installed"
}

install_once "browser-$hash" "$DEST" is_installed install
echo "$DEST"
