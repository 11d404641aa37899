#!/usr/bin/env bash
# Installs Debian's redis-server 7.0 (packages redis-server, redis-tools and the two libraries they
# need that a base image lacks) without touching the system: the packages are downloaded with
# apt-get and unpacked into $OBOL_TOOLS_DIR/redis-7.0, next to a `redis-server`
# wrapper that sets the library path. Prints the wrapper's path; exits at once when installed.
# Safe to run concurrently: one lock per tool, unpacked into a private directory, renamed into place.
set -euo pipefail

OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
PACKAGES=(redis-server redis-tools libjemalloc2 liblzf1)

log() { printf '[redis.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SERIES=7.0
DIR="$OBOL_TOOLS_DIR/redis-$SERIES"
BIN="$DIR/bin/redis-server"

works() { [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "Redis server v=$SERIES\."; }

if works; then echo "$BIN"; exit 0; fi

mkdir -p "$OBOL_TOOLS_DIR"
exec 9>"$OBOL_TOOLS_DIR/redis.lock"
flock 9
if works; then echo "$BIN"; exit 0; fi

candidate() { apt-cache policy redis-server 2>/dev/null | awk '/Candidate:/ {print $2}'; }
VERSION=$(candidate)
if [ -z "$VERSION" ] || [ "$VERSION" = "(none)" ]; then
  log "no redis-server in the package lists; running apt-get update"
  apt-get update -qq >&2
  VERSION=$(candidate)
fi
case "$VERSION" in
  *:$SERIES.*) ;;
  *) log "redis-server $SERIES.x expected from Debian, candidate is '$VERSION'"; exit 1 ;;
esac

log "installing Debian's redis-server $VERSION into $DIR"
tmp=$(mktemp -d "$OBOL_TOOLS_DIR/.redis-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -o APT::Sandbox::User=root download -qq "${PACKAGES[@]}" >&2)
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
mkdir -p "$tmp/bin"
# redis-server is a symlink to redis-check-rdb, which picks its role from argv[0].
cat > "$tmp/bin/redis-server" <<'WRAP'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/..
LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$here/root/usr/bin/redis-server" "$@"
WRAP
cat > "$tmp/bin/redis-cli" <<'WRAP'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/..
LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$here/root/usr/bin/redis-cli" "$@"
WRAP
chmod +x "$tmp/bin/redis-server" "$tmp/bin/redis-cli"
rm -f "$tmp"/*.deb
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
works || { log "the unpacked redis-server does not run"; exit 1; }
echo "$BIN"
