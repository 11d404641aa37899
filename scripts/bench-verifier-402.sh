#!/usr/bin/env bash
# Unpaid-402 throughput of the release verifier (file route source, /verify/{ns}/{name}) next to
# a bare hyper server answering a fixed 402 of the same size, with wrk, on loopback only.
# Each run is bounded (DURATION, default 5s, after a 2s warm-up; ROUNDS rounds of three runs,
# default 3); both servers are stopped at the end. Prints req/s and the ratio of the median
# round (target: verifier >= 70% of bare hyper).
#
#   scripts/bench-verifier-402.sh            # DURATION=5s ROUNDS=3 CONNECTIONS=64 THREADS=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
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
"$TARGET/release/x402-verifier" --listen "$VERIFIER_ADDR" --gateway-listen 127.0.0.1:0 --log warn \
  --facilitator-url http://127.0.0.1:9 --route-source file --routes-file "$tmp/routes.yaml" \
  >"$tmp/verifier.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://$VERIFIER_ADDR/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
verify_url="http://$VERIFIER_ADDR/verify/default/demo"
hdrs=(-H "X-Forwarded-Uri: /services/demo/v1/chat/completions" -H "X-Forwarded-Host: obol.stack"
  -H "X-Forwarded-Proto: https")
code="$(curl -s -D "$tmp/402.headers" -o "$tmp/402.body" -w '%{http_code}' "${hdrs[@]}" "$verify_url")"
[ "$code" = 402 ] || { cat "$tmp/verifier.log" >&2; log "verifier answered $code, not 402"; exit 1; }
# The baseline answers the verifier's own 402 bytes (body and PAYMENT-REQUIRED header).
tr -d '\r' <"$tmp/402.headers" | awk -F': ' 'tolower($1) == "payment-required" {print $2}' \
  >"$tmp/402.payment-required"
"$TARGET/release/examples/bare-402" "$BARE_ADDR" "$tmp/402.body" "$tmp/402.payment-required" \
  >"$tmp/bare.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://$BARE_ADDR/" 2>/dev/null && break
  sleep 0.1
done
code="$(curl -s -o /dev/null -w '%{http_code}' "http://$BARE_ADDR/")"
[ "$code" = 402 ] || { log "bare server answered $code, not 402"; exit 1; }

run() { # name url [wrk args] -> req/s
  local name="$1" url="$2"; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$tmp/$name.txt"
  cat "$tmp/$name.txt" >&2
  local rps
  rps="$(awk '/^Requests\/sec/ {print $2}' "$tmp/$name.txt")"
  # A failed wrk run must stop the script, not become an empty figure.
  [[ "$rps" =~ ^[0-9.]+$ ]] || { log "wrk gave no rate for $name"; return 1; }
  echo "$rps"
}

# A distinct X-Forwarded-Uri per request: the per-route 402 cache never hits.
cat >"$tmp/vary.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", nil, {
    ["X-Forwarded-Uri"] = "/services/demo/v1/chat/" .. n,
    ["X-Forwarded-Host"] = "obol.stack",
    ["X-Forwarded-Proto"] = "https",
  })
end
LUA

# The machine is shared: runs alternate (verifier, verifier with distinct URIs, bare) for
# ROUNDS rounds, so load drifts hit all three alike; the ratio is taken per round, and the
# median round is reported.
rounds=()
for r in $(seq "$ROUNDS"); do
  log "round $r/$ROUNDS"
  v="$(run "verifier-$r" "$verify_url" "${hdrs[@]}")"
  m="$(run "verifier-miss-$r" "$verify_url" -s "$tmp/vary.lua")"
  b="$(run "bare-$r" "http://$BARE_ADDR/" "${hdrs[@]}")"
  rounds+=("$(awk -v v="$v" -v m="$m" -v b="$b" 'BEGIN { printf "%.4f %s %s %s", v / b, v, m, b }')")
  echo "round $r: verifier $v req/s, distinct URIs $m req/s, bare hyper $b req/s"
done
read -r _ v m b <<<"$(printf '%s\n' "${rounds[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")"
pct() { awk -v v="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * v / b }'; }
echo "median round of $ROUNDS:"
echo "verifier 402:                     $v req/s"
echo "verifier 402, distinct URIs:      $m req/s"
echo "bare hyper 402:                   $b req/s"
echo "ratio:                            $(pct "$v" "$b") % (target >= 70 %)"
echo "ratio, distinct URIs (no cache):  $(pct "$m" "$b") %"
