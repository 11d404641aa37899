#!/usr/bin/env bash
# Installs etcd 3.4 and builds kube-apiserver + kube-controller-manager 1.20.2 from Debian's
# `kubernetes` source package, offline, with Debian's Go, into $OBOL_TOOLS_DIR/k8s-1.20.2/bin.
# Safe to run concurrently (see lib.sh): the build happens in a private temporary directory and
# only the finished binaries are published, with one rename. Exits at once when they are there.
set -euo pipefail
TOOL=k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_VERSION=1.20.2
DEST="$OBOL_TOOLS_DIR/k8s-$K8S_VERSION"

is_installed() { [ -x "$1/bin/kube-apiserver" ] && [ -x "$1/bin/kube-controller-manager" ] && [ -x "$1/bin/etcd" ]; }

# Builds into $1/bin; the work (apt state, sources, Go caches) stays in $1/work, removed at the end.
build() {
  local out=$1 W="$1/work"
  log "building the Kubernetes $K8S_VERSION control plane (first time on this machine: ~7-12 min)"
  mkdir -p "$W"/{apt/lists/partial,apt/cache/archives/partial,apt/sources.d,src,debs} "$out/bin"

  local need_apt=()
  command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
  command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
  command -v make >/dev/null 2>&1 || need_apt+=(make)
  if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt-get install ${need_apt[*]}"
    apt_get update -qq
    apt_get install -y -qq "${need_apt[@]}" >/dev/null
  fi

  # A private apt state with deb-src entries derived from the machine's own entries.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$W/apt/sources.d/debian-src.sources"
  else
    grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$W/apt/sources.d/src.list"
  fi
  local apto=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$W/apt/sources.d"
              -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache" -o APT::Sandbox::User=root)

  log "downloading the kubernetes source package and etcd"
  apt-get "${apto[@]}" update -qq
  (cd "$W/src" && apt-get "${apto[@]}" source --download-only kubernetes >/dev/null)
  local orig; orig=$(ls "$W/src"/kubernetes_*.orig.tar.gz | head -n1)
  (cd "$W/debs" && apt-get -o APT::Sandbox::User=root download -qq etcd-server \
      golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev \
    && for f in *.deb; do dpkg-deb -x "$f" unpacked; done)
  cp "$W/debs/unpacked/usr/bin/etcd" "$out/bin/etcd"

  local src="$W/src/kubernetes-$K8S_VERSION"
  log "unpacking $(basename "$orig")"
  tar -C "$W/src" -xzf "$orig"
  # The vendored reflect2 1.0.1 / json-iterator 1.1.10 crash under Go >= 1.18 on the first
  # custom-resource create: use Debian's reflect2 1.0.2 / json-iterator 1.1.12 instead.
  local v="$src/vendor/github.com" g="$W/debs/unpacked/usr/share/gocode/src/github.com"
  rm -rf "$v/modern-go/reflect2" "$v/json-iterator/go"
  cp -r "$g/modern-go/reflect2" "$v/modern-go/"
  cp -r "$g/json-iterator/go" "$v/json-iterator/"

  export GOPATH="$W/gopath" GOCACHE="$W/gocache" GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
  mkdir -p "$GOPATH/src/k8s.io"
  ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
  (
    cd "$GOPATH/src/k8s.io/kubernetes"
    log "make gen_openapi"
    make gen_openapi >"$W/gen_openapi.log" 2>&1 || { tail -n 40 "$W/gen_openapi.log" >&2; exit 1; }
    local p=k8s.io/kubernetes/vendor/k8s.io ld="-s -w" kv bin ticker
    for kv in gitVersion=v$K8S_VERSION gitMajor=1 gitMinor=20 gitTreeState=clean; do
      ld="$ld -X $p/component-base/version.$kv -X $p/client-go/pkg/version.$kv"
    done
    for bin in kube-apiserver kube-controller-manager; do
      log "go build $bin (progress: a dot every 30 s)"
      ( while sleep 30; do printf '.' >&2; done ) & ticker=$!
      if ! go build -ldflags "$ld" -o "$out/bin/$bin" "k8s.io/kubernetes/cmd/$bin" 2>"$W/build-$bin.log"; then
        kill "$ticker" 2>/dev/null || true
        tail -n 40 "$W/build-$bin.log" >&2
        exit 1
      fi
      kill "$ticker" 2>/dev/null || true
      printf '\n' >&2
    done
  )
  "$out/bin/kube-apiserver" --version >&2
  remove "$W"
}

install_once "k8s-$K8S_VERSION" "$DEST" is_installed build
