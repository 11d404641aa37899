# Sourced by the installers in this directory: the one way a tool gets into the cache, safe when
# several run at once (parallel tests, two worktrees, `obol dev up` beside `scripts/test`).
#
#   install_once NAME DEST IS_INSTALLED INSTALL
#
# DEST ($OBOL_TOOLS_DIR/<tool>-<version>) is used as it is when `IS_INSTALLED DEST` succeeds.
# Otherwise, holding the lock $OBOL_TOOLS_DIR/NAME.lock (one per tool; the second caller waits,
# then finds the tool), `INSTALL DIR` installs into DIR, a private temporary directory beside
# DEST; `IS_INSTALLED DIR` checks the result, and one rename publishes it as DEST. A DEST that is
# there but incomplete (an interrupted older install) is renamed aside, never deleted in place;
# the next install removes such leftovers. Nothing else ever removes a published DEST.

OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
export OBOL_TOOLS_DIR

log() { printf '[%s %s] %s\n' "${TOOL:-tools}" "$(date +%H:%M:%S)" "$*" >&2; }

# Removes private or abandoned directories (Go leaves its caches read-only).
remove() { chmod -R u+w "$@" 2>/dev/null || true; rm -rf "$@"; }

install_once() {
  local name=$1 dest=$2 is_installed=$3 install=$4
  "$is_installed" "$dest" && return 0
  mkdir -p "$OBOL_TOOLS_DIR"
  local lock
  exec {lock}>"$OBOL_TOOLS_DIR/$name.lock"
  flock "$lock"
  if "$is_installed" "$dest"; then
    exec {lock}>&-
    return 0
  fi
  # Leftovers of interrupted installs of this tool: nobody can be using them (we hold the lock).
  remove "$OBOL_TOOLS_DIR/.stale-$name."* "$OBOL_TOOLS_DIR/.tmp-$name."*
  local tmp start pid
  tmp=$(mktemp -d "$OBOL_TOOLS_DIR/.tmp-$name.XXXXXX")
  start=$(date +%s)
  # In the background so that `set -e` holds inside INSTALL (it would not in a condition).
  "$install" "$tmp" &
  pid=$!
  if ! wait "$pid" || ! "$is_installed" "$tmp"; then
    log "installing $name failed"
    remove "$tmp"
    exec {lock}>&-
    return 1
  fi
  if [ -e "$dest" ]; then
    mv -T "$dest" "$(mktemp -u "$OBOL_TOOLS_DIR/.stale-$name.XXXXXX")"
  fi
  mv -T "$tmp" "$dest"
  exec {lock}>&-
  log "installed $name in $(( $(date +%s) - start )) s"
}

# apt-get that waits for another apt/dpkg run instead of failing.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
