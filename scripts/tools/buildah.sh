#!/usr/bin/env bash
# Installs Debian's buildah 1.28 (packages buildah, libgpgme11 and golang-github-containers-common)
# without touching the system: the packages are downloaded with apt-get and unpacked into
# $OBOL_TOOLS_DIR/buildah-1.28, next to a `buildah` wrapper that sets the library path and points
# buildah at configuration files of its own (an empty registries list: images are built from
# scratch, nothing is pulled) and a signature policy file, `policy.json`, for `--signature-policy`.
# Prints the wrapper's path; exits at once when installed. Safe to run concurrently: see lib.sh.
set -euo pipefail
TOOL=buildah.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(buildah libgpgme11 golang-github-containers-common)
SERIES=1.28
DEST="$OBOL_TOOLS_DIR/buildah-$SERIES"

is_installed() {
  [ -x "$1/bin/buildah" ] && [ -f "$1/policy.json" ] &&
    "$1/bin/buildah" --version 2>/dev/null | grep -q "^buildah version $SERIES\."
}

candidate() { apt-cache policy buildah 2>/dev/null | awk '/Candidate:/ {print $2}'; }

install() {
  local out=$1 version
  version=$(candidate)
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    log "no buildah in the package lists; running apt-get update"
    apt_get update -qq >&2
    version=$(candidate)
  fi
  case "$version" in
    $SERIES.*) ;;
    *) log "buildah $SERIES.x expected from Debian, candidate is '$version'"; return 1 ;;
  esac
  log "installing Debian's buildah $version"
  (cd "$out" && apt-get -o APT::Sandbox::User=root download -qq "${PACKAGES[@]}" >&2)
  local deb
  for deb in "$out"/*.deb; do dpkg-deb -x "$deb" "$out/root"; done
  rm -f "$out"/*.deb
  # Nothing is ever pulled or pushed by buildah here: no registry to search, any image accepted
  # (the only image it reads is the one it is building).
  printf 'unqualified-search-registries = []\n' > "$out/registries.conf"
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' > "$out/policy.json"
  mkdir -p "$out/bin"
  cat > "$out/bin/buildah" <<'WRAP'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/..
export CONTAINERS_REGISTRIES_CONF="$here/registries.conf"
export CONTAINERS_CONF="$here/root/usr/share/containers/containers.conf"
LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$here/root/usr/bin/buildah" "$@"
WRAP
  chmod +x "$out/bin/buildah"
}

install_once "buildah-$SERIES" "$DEST" is_installed install
echo "$DEST/bin/buildah"
