#!/usr/bin/env bash
# Installs etcd 3.4 and builds kube-apiserver + kube-controller-manager 1.20.2 from Debian's
# `kubernetes` source package, offline, with Debian's Go. Cached outside the repository, keyed by
# version, in $OBOL_TOOLS_DIR/k8s-1.20.2/bin. Exits at once when the binaries are already there.
set -euo pipefail

K8S_VERSION=1.20.2
OBOL_TOOLS_DIR=${OBOL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/obol-tools}
K="$OBOL_TOOLS_DIR/k8s-$K8S_VERSION"

log() { printf '[k8s.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$K/bin/kube-apiserver" ] && [ -x "$K/bin/kube-controller-manager" ] && [ -x "$K/bin/etcd" ]; then
  exit 0
fi

start=$(date +%s)
log "building the Kubernetes $K8S_VERSION control plane into $K (first time on this machine: ~7-12 min)"
mkdir -p "$K"/{apt/lists/partial,apt/cache/archives/partial,apt/sources.d,src,debs,bin}

need_apt=()
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v make >/dev/null 2>&1 || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# A private apt state with deb-src entries derived from the machine's own entries.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$K/apt/sources.d/debian-src.sources"
else
  grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$K/apt/sources.d/src.list"
fi
APTO=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$K/apt/sources.d"
      -o "Dir::State::Lists=$K/apt/lists" -o "Dir::Cache=$K/apt/cache" -o APT::Sandbox::User=root)

log "downloading the kubernetes source package and etcd"
apt-get "${APTO[@]}" update -qq
orig=$(ls "$K/src"/kubernetes_*.orig.tar.gz 2>/dev/null | head -n1 || true)
if [ -z "$orig" ]; then
  (cd "$K/src" && apt-get "${APTO[@]}" source --download-only kubernetes >/dev/null)
  orig=$(ls "$K/src"/kubernetes_*.orig.tar.gz | head -n1)
fi
if [ ! -d "$K/debs/unpacked/usr/bin" ]; then
  (cd "$K/debs" && apt-get -o APT::Sandbox::User=root download -qq etcd-server \
      golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev \
    && for f in *.deb; do dpkg-deb -x "$f" unpacked; done)
fi
cp "$K/debs/unpacked/usr/bin/etcd" "$K/bin/etcd.tmp" && mv "$K/bin/etcd.tmp" "$K/bin/etcd"

SRC="$K/src/kubernetes-$K8S_VERSION"
if [ ! -d "$SRC" ]; then
  log "unpacking $(basename "$orig")"
  tar -C "$K/src" -xzf "$orig"
  # The vendored reflect2 1.0.1 / json-iterator 1.1.10 crash under Go >= 1.18 on the first
  # custom-resource create: use Debian's reflect2 1.0.2 / json-iterator 1.1.12 instead.
  V="$SRC/vendor/github.com"; G="$K/debs/unpacked/usr/share/gocode/src/github.com"
  rm -rf "$V/modern-go/reflect2" "$V/json-iterator/go"
  cp -r "$G/modern-go/reflect2" "$V/modern-go/"
  cp -r "$G/json-iterator/go" "$V/json-iterator/"
fi

export GOPATH="$K/gopath" GOCACHE="$K/gocache" GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$SRC" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
if ! grep -q GetOpenAPIDefinitions pkg/generated/openapi/zz_generated.openapi.go 2>/dev/null; then
  log "make gen_openapi"
  make gen_openapi >"$K/gen_openapi.log" 2>&1 || { tail -n 40 "$K/gen_openapi.log" >&2; exit 1; }
fi

P=k8s.io/kubernetes/vendor/k8s.io
LD="-s -w"
for kv in gitVersion=v$K8S_VERSION gitMajor=1 gitMinor=20 gitTreeState=clean; do
  LD="$LD -X $P/component-base/version.$kv -X $P/client-go/pkg/version.$kv"
done
for bin in kube-apiserver kube-controller-manager; do
  log "go build $bin (progress: a dot every 30 s)"
  ( while sleep 30; do printf '.' >&2; done ) & ticker=$!
  if ! go build -ldflags "$LD" -o "$K/bin/$bin.tmp" "k8s.io/kubernetes/cmd/$bin" 2>"$K/build-$bin.log"; then
    kill "$ticker" 2>/dev/null || true
    tail -n 40 "$K/build-$bin.log" >&2
    exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  printf '\n' >&2
  mv "$K/bin/$bin.tmp" "$K/bin/$bin"
done
"$K/bin/kube-apiserver" --version >&2
log "done in $(( $(date +%s) - start )) s"
