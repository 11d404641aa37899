#!/usr/bin/env bash
# Installs Debian's redis-server 7.0 (packages redis-server, redis-tools and the two libraries they
# need that a base image lacks) without touching the system: the packages are downloaded with
# apt-get and unpacked into $OBOL_TOOLS_DIR/redis-7.0, next to a `redis-server`
# wrapper that sets the library path. Prints the wrapper's path; exits at once when installed.
# Safe to run concurrently: see lib.sh.
set -euo pipefail
TOOL=redis.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(redis-server redis-tools libjemalloc2 liblzf1)
SERIES=7.0
DEST="$OBOL_TOOLS_DIR/redis-$SERIES"

is_installed() { [ -x "$1/bin/redis-server" ] && "$1/bin/redis-server" --version 2>/dev/null | grep -q "Redis server v=$SERIES\."; }

candidate() { apt-cache policy redis-server 2>/dev/null | awk '/Candidate:/ {print $2}'; }

install() {
  local out=$1 version
  version=$(candidate)
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    log "no redis-server in the package lists; running apt-get update"
    apt_get update -qq >&2
    version=$(candidate)
  fi
  case "$version" in
    *:$SERIES.*) ;;
    *) log "redis-server $SERIES.x expected from Debian, candidate is '$version'"; return 1 ;;
  esac
  log "installing Debian's redis-server $version"
  (cd "$out" && apt-get -o APT::Sandbox::User=root download -qq "${PACKAGES[@]}" >&2)
  local deb
  for deb in "$out"/*.deb; do dpkg-deb -x "$deb" "$out/root"; done
  rm -f "$out"/*.deb
  mkdir -p "$out/bin"
  # redis-server is a symlink to redis-check-rdb, which picks its role from argv[0].
  local tool
  for tool in redis-server redis-cli; do
    cat > "$out/bin/$tool" <<WRAP
#!/bin/sh
here=\$(dirname "\$(readlink -f "\$0")")/..
LD_LIBRARY_PATH="\$here/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \\
  exec "\$here/root/usr/bin/$tool" "\$@"
WRAP
    chmod +x "$out/bin/$tool"
  done
}

install_once "redis-$SERIES" "$DEST" is_installed install
echo "$DEST/bin/redis-server"
