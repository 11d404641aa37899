#!/usr/bin/env bash
# Installs Debian's chromium (the browser of the paywall test) and prints the path of a wrapper,
# $OBOL_TOOLS_DIR/chromium/bin/chromium, that runs it. Chromium needs well over a hundred
# shared libraries, so unlike redis.sh it is installed into the system with apt-get (apt's own
# lock makes concurrent runs wait); the wrapper directory is published like every other tool
# (a lock per tool, a private temporary directory, one rename: see lib.sh). Exits at once when
# installed.
set -euo pipefail
TOOL=chromium.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Tested with 156 (Debian 12's security updates). Debian replaces the browser in place with each
# security release, so any release from this one on is taken; an older one fails loudly.
MIN_MAJOR=156
DEST="$OBOL_TOOLS_DIR/chromium"
SYSTEM_BIN=/usr/bin/chromium

version_of() { "$1" --version 2>/dev/null | awk '{print $2}'; }

recent() { local major=${1%%.*}; [ -n "$major" ] && [ "$major" -ge "$MIN_MAJOR" ] 2>/dev/null; }

is_installed() { [ -x "$1/bin/chromium" ] && recent "$(version_of "$1/bin/chromium")"; }

install() {
  local out=$1 have
  have=$(version_of "$SYSTEM_BIN" || true)
  if [ -z "$have" ]; then
    log "installing Debian's chromium with apt-get"
    apt_get update -qq >&2
    apt_get install -y -qq --no-install-recommends chromium >&2
    have=$(version_of "$SYSTEM_BIN")
  fi
  if ! recent "$have"; then
    log "chromium $MIN_MAJOR or later expected from Debian, $SYSTEM_BIN is '$have'"
    return 1
  fi
  mkdir -p "$out/bin"
  cat > "$out/bin/chromium" <<WRAP
#!/bin/sh
exec $SYSTEM_BIN "\$@"
WRAP
  chmod +x "$out/bin/chromium"
}

install_once chromium "$DEST" is_installed install
echo "$DEST/bin/chromium"
