#!/usr/bin/env bash
# The figures of gateway mode `proxy` (BENCHMARKS.md §11), side by side in one run on this machine,
# loopback only, without Traefik (client -> verifier gateway -> upstream, against client ->
# upstream):
#
#   1. a paid request through the gateway vs the same request straight to the upstream, with a
#      zero-latency facilitator stub: added p50 / p99 for a 1 KiB JSON and a 1 MiB answer, and
#      the verifier's CPU per paid request (/proc/<pid>/stat);
#   2. time to the first event of an SSE stream, through the gateway vs direct;
#   3. the verifier's RSS with 1 000 paid streams open at once;
#   4. metering: the same LLM-shaped answers (1 MiB JSON, a 2 000-event stream) bought per
#      request (exact) and per token (upto, metered from their usage), alternately;
#   5. unpaid 402 throughput (wrk) of the gateway listener vs bare hyper answering the same bytes,
#      next to the ForwardAuth endpoint and x402-axum; ROUNDS alternating rounds, median round.
#
# PARTS="measure metering unpaid" (the default) selects them: measure = 1-3, metering = 4,
# unpaid = 5. Parts 1-3 are `gateway-bench measure` (crates/verifier/examples/gateway_bench.rs); every paid
# request carries a freshly signed EIP-3009 authorization, every answer is checked. Every load is
# bounded in time; every process started here is stopped by its pid at the end.
#
#   scripts/bench-gateway.sh   # DURATION=5s ROUNDS=3 CONNECTIONS=64 THREADS=1, and the GW_*
#                              # counts of gateway_bench.rs (GW_STREAMS=1000, ...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
PARTS="${PARTS:-measure metering unpaid}"
has() { [[ " $PARTS " == *" $1 "* ]]; }
TARGET="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
log "building: release verifier, gateway-bench, bare hyper baseline, x402-axum paygate"
cargo build --release -q -p obol-verifier --bin x402-verifier --example bare-402 --example gateway-bench
(cd bench/axum-paygate && CARGO_TARGET_DIR="$TARGET/bench" cargo build --release -q)

# 1 000 streams hold about 3 000 sockets across the client, the verifier and the upstream.
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n 8192

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url [curl args]: until it answers at all
  local url="$1"; shift
  for _ in $(seq 150); do
    curl -s -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  log "$url never answered"; cat "$tmp"/*.log >&2; return 1
}

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
bench="$TARGET/release/examples/gateway-bench"
stub=$(port); up=$(port); admin=$(port); gw=$(port); bare=$(port); axum=$(port)
"$bench" stub "127.0.0.1:$stub" >"$tmp/stub.log" 2>&1 & pids+=($!)
"$bench" upstream "127.0.0.1:$up" >"$tmp/upstream.log" 2>&1 & pids+=($!)
cat >"$tmp/routes.yaml" <<YAML
routes:
  - name: demo
    namespace: default
    pattern: /services/demo/*
    price: "1000"
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    network: base-sepolia
    proxy:
      upstream: http://127.0.0.1:$up
      stripPrefix: /services/demo
  - name: llm
    namespace: default
    pattern: /services/llm/*
    price: "1000"
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    network: base-sepolia
    metering:
      inputPerMTok: "1000000"
      outputPerMTok: "2000000"
      maxTokensPerRequest: 100000
      maxAmount: "200000"
    proxy:
      upstream: http://127.0.0.1:$up
      stripPrefix: /services/llm
YAML
"$TARGET/release/x402-verifier" --listen "127.0.0.1:$admin" --gateway-listen "127.0.0.1:$gw" \
  --log warn --facilitator-url "http://127.0.0.1:$stub" --route-source file \
  --routes-file "$tmp/routes.yaml" >"$tmp/verifier.log" 2>&1 & verifier=$!; pids+=($verifier)
wait_http "http://127.0.0.1:$stub/calls"
wait_http "http://127.0.0.1:$up/v1/small"
wait_http "http://127.0.0.1:$admin/readyz" -f

echo "(not run)" >"$tmp/measure.md"
echo "(not run)" >"$tmp/metering.md"
echo "(not run)" >"$tmp/unpaid.md"
if has measure; then
  log "1-3/5 paid requests, SSE, concurrent streams (gateway-bench measure)"
  "$bench" measure "127.0.0.1:$gw" "127.0.0.1:$up" "127.0.0.1:$stub" "$verifier" >"$tmp/measure.md" \
    || { cat "$tmp/verifier.log" >&2; exit 1; }
fi
if has metering; then
  log "4/5 metering: per-request route vs per-token route (gateway-bench metering)"
  "$bench" metering "127.0.0.1:$gw" "127.0.0.1:$stub" "$verifier" >"$tmp/metering.md" \
    || { cat "$tmp/verifier.log" >&2; exit 1; }
fi

unpaid() {
# The unpaid path: what a client gets from the gateway listener, with the route header the
# HTTPRoute sets. The bare hyper baseline answers exactly these bytes.
gw_url="http://127.0.0.1:$gw/services/demo/v1/chat/completions"
gw_hdr=(-H "x-obol-payment-route: default/demo")
fa_url="http://127.0.0.1:$admin/verify/default/demo"
fa_hdr=(-H "X-Forwarded-Uri: /services/demo/v1/chat/completions" -H "X-Forwarded-Host: 127.0.0.1:$gw"
  -H "X-Forwarded-Proto: http")
code="$(curl -s -D "$tmp/402.headers" -o "$tmp/402.body" -w '%{http_code}' "${gw_hdr[@]}" "$gw_url")"
[ "$code" = 402 ] || { cat "$tmp/verifier.log" >&2; log "gateway answered $code, not 402"; exit 1; }
tr -d '\r' <"$tmp/402.headers" | awk -F': ' 'tolower($1) == "payment-required" {print $2}' \
  >"$tmp/402.payment-required"
"$TARGET/release/examples/bare-402" "127.0.0.1:$bare" "$tmp/402.body" "$tmp/402.payment-required" \
  >"$tmp/bare.log" 2>&1 & pids+=($!)
"$TARGET/bench/release/axum-paygate-bench" "127.0.0.1:$axum" >"$tmp/axum.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$bare/"
wait_http "http://127.0.0.1:$axum/paid/x"
declare -A URL=([gateway]="$gw_url" [forwardauth]="$fa_url" [bare]="http://127.0.0.1:$bare/"
  [axum]="http://127.0.0.1:$axum/paid/x")
for name in "${!URL[@]}"; do
  hdr=("${gw_hdr[@]}"); [ "$name" = forwardauth ] && hdr=("${fa_hdr[@]}")
  code="$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "${URL[$name]}")"
  [ "$code" = 402 ] || { log "$name answered $code, not 402"; exit 1; }
done

run() { # name -> req/s
  local name="$1" hdr=("${gw_hdr[@]}")
  [ "$name" = forwardauth ] && hdr=("${fa_hdr[@]}")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "${hdr[@]}" "${URL[$name]}" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${hdr[@]}" "${URL[$name]}" >"$tmp/$name.txt"
  local rps non2xx
  rps="$(awk '/^Requests\/sec/ {print $2}' "$tmp/$name.txt")"
  [[ "$rps" =~ ^[0-9.]+$ ]] || { cat "$tmp/$name.txt" >&2; log "wrk gave no rate for $name"; return 1; }
  # Every answer must be the 402 (wrk counts anything outside 2xx/3xx as "Non-2xx").
  non2xx="$(awk '/Non-2xx/ {print $5}' "$tmp/$name.txt")"
  total="$(awk '/requests in/ {print $1}' "$tmp/$name.txt")"
  [ "${non2xx:-0}" = "$total" ] || { log "$name: $non2xx of $total answers were not 402-like"; return 1; }
  echo "$rps"
}
log "5/5 unpaid 402, $ROUNDS alternating rounds of ${DURATION} at $CONNECTIONS connections"
rounds=()
for r in $(seq "$ROUNDS"); do
  g="$(run gateway)"; f="$(run forwardauth)"; b="$(run bare)"; a="$(run axum)"
  rounds+=("$(awk -v g="$g" -v f="$f" -v b="$b" -v a="$a" 'BEGIN { printf "%.4f %s %s %s %s", g / b, g, f, b, a }')")
  log "round $r: gateway $g, forwardauth $f, bare hyper $b, x402-axum $a req/s"
done
echo "Unpaid 402 at $CONNECTIONS connections, wrk -t$THREADS, $DURATION per run after 2 s of warm-up, $ROUNDS rounds alternating:"
echo
echo "| round | gateway (proxy) req/s | ForwardAuth req/s | bare hyper req/s | x402-axum req/s | gateway / bare | ForwardAuth / bare | x402-axum / bare |"
echo "|---|---|---|---|---|---|---|---|"
i=0
for line in "${rounds[@]}"; do
  i=$((i + 1))
  read -r _ g f b a <<<"$line"
  awk -v i="$i" -v g="$g" -v f="$f" -v b="$b" -v a="$a" \
    'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", i, g, f, b, a, g / b, f / b, a / b }'
done
read -r ratio _ <<<"$(printf '%s\n' "${rounds[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")"
echo
echo "Median round: gateway / bare hyper = $ratio (goal >= 0.7)."
}
has unpaid && unpaid >"$tmp/unpaid.md"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "## Gateway mode proxy: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')"
echo
echo "- $(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); load average at start $load_start, at end $load_end"
echo "- no Traefik: direct is client -> upstream, gateway is client -> verifier gateway listener -> upstream"
echo
cat "$tmp/measure.md"
echo
echo "Metering: the same answers bought per request (exact) and per token (upto, metered):"
echo
cat "$tmp/metering.md"
echo
cat "$tmp/unpaid.md"
