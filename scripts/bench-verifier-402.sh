#!/usr/bin/env bash
# Unpaid-402 throughput of the release verifier (file route source, /verify/{ns}/{name}) next to
# a bare hyper server answering a fixed 402 of the same size, with wrk, on loopback only.
# Each run is bounded (DURATION, default 10s, after a 2s warm-up); both servers are stopped at
# the end. Prints both req/s and the ratio (target: verifier >= 70% of bare hyper).
#
#   scripts/bench-verifier-402.sh            # DURATION=10s CONNECTIONS=64 THREADS=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
VERIFIER_ADDR="127.0.0.1:${VERIFIER_PORT:-18391}"
BARE_ADDR="127.0.0.1:${BARE_PORT:-18392}"
TARGET="${CARGO_TARGET_DIR:-target}"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi

log "building the release verifier and the bare hyper baseline"
cargo build --release -q -p obol-verifier --bin x402-verifier --example bare-402

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/routes.yaml" <<'YAML'
routes:
  - name: demo
    namespace: default
    pattern: /services/demo/*
    price: "1000"
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    network: base-sepolia
YAML

# The facilitator is never called on the unpaid path; port 9 (discard) stands in.
"$TARGET/release/x402-verifier" --listen "$VERIFIER_ADDR" --log warn \
  --facilitator-url http://127.0.0.1:9 --route-source file --routes-file "$tmp/routes.yaml" \
  >"$tmp/verifier.log" 2>&1 &
pids+=($!)
"$TARGET/release/examples/bare-402" "$BARE_ADDR" >"$tmp/bare.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  curl -sf "http://$VERIFIER_ADDR/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
verify_url="http://$VERIFIER_ADDR/verify/default/demo"
hdrs=(-H "X-Forwarded-Uri: /services/demo/v1/chat/completions" -H "X-Forwarded-Host: obol.stack"
  -H "X-Forwarded-Proto: https")
code="$(curl -s -o /dev/null -w '%{http_code}' "${hdrs[@]}" "$verify_url")"
[ "$code" = 402 ] || { cat "$tmp/verifier.log" >&2; log "verifier answered $code, not 402"; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' "http://$BARE_ADDR/")"
[ "$code" = 402 ] || { log "bare server answered $code, not 402"; exit 1; }

run() { # name url [wrk args] -> req/s
  local name="$1" url="$2"; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$tmp/$name.txt"
  cat "$tmp/$name.txt" >&2
  awk '/^Requests\/sec/ {print $2}' "$tmp/$name.txt"
}

log "verifier: $verify_url"
v="$(run verifier "$verify_url" "${hdrs[@]}")"
log "bare hyper: http://$BARE_ADDR/"
b="$(run bare "http://$BARE_ADDR/" "${hdrs[@]}")"

ratio="$(awk -v v="$v" -v b="$b" 'BEGIN { printf "%.1f", 100 * v / b }')"
echo "verifier 402:   $v req/s"
echo "bare hyper 402: $b req/s"
echo "ratio:          $ratio % (target >= 70 %)"
