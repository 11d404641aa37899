#!/usr/bin/env bash
# The unpaid-402 path, side by side in one run on this machine, with wrk at fixed connection
# counts: our verifier (release, file route source, ForwardAuth endpoint), a bare hyper server
# answering a fixed 402 (the limit), the official @x402/express middleware, and the x402-axum
# paygate (x402-rs, from the Rust registry). Loopback only; every run is bounded; every server
# started here is stopped at the end. Prints one Markdown table.
#
#   scripts/bench-402-peers.sh        # DURATION=5s CONNECTIONS="16 64" THREADS=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-16 64}"
THREADS="${THREADS:-1}"
TARGET="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
log "building: release verifier, bare hyper baseline, x402-axum paygate"
cargo build --release -q -p obol-verifier --bin x402-verifier --example bare-402
(cd bench/axum-paygate && CARGO_TARGET_DIR="$TARGET/bench" cargo build --release -q)
PEERS=$(scripts/tools/x402-peers.sh)

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A stub facilitator for the peers that ask /supported at start (the unpaid path never settles).
fac=$(port)
cat >"$tmp/stub.py" <<'PY'
import http.server, json, sys
KINDS = {"kinds": [{"x402Version": 2, "scheme": "exact", "network": "eip155:84532"},
                   {"x402Version": 1, "scheme": "exact", "network": "base-sepolia"}],
         "extensions": [], "signers": {}}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(KINDS).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$tmp/stub.py" "$fac" >"$tmp/stub.log" 2>&1 & pids+=($!)

cat >"$tmp/routes.yaml" <<'YAML'
routes:
  - name: demo
    namespace: default
    pattern: /services/demo/*
    price: "1000"
    payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    network: base-sepolia
YAML
v=$(port); b=$(port); e=$(port); a=$(port)
"$TARGET/release/x402-verifier" --listen "127.0.0.1:$v" --gateway-listen 127.0.0.1:0 --log warn --facilitator-url "http://127.0.0.1:$fac" \
  --route-source file --routes-file "$tmp/routes.yaml" >"$tmp/verifier.log" 2>&1 & pids+=($!)
"$TARGET/release/examples/bare-402" "127.0.0.1:$b" >"$tmp/bare.log" 2>&1 & pids+=($!)
FACILITATOR_URL="http://127.0.0.1:$fac" PAY_TO=0x70997970C51812dc3A010C7d01b50e0d17dc79C8 SELLER_PORT="$e" \
  NODE_PATH="$PEERS/node_modules" node tools/x402-peers/seller.cjs >"$tmp/express.log" 2>&1 & pids+=($!)
"$TARGET/bench/release/axum-paygate-bench" "127.0.0.1:$a" >"$tmp/axum.log" 2>&1 & pids+=($!)

declare -A URL=(
  [obol-verifier]="http://127.0.0.1:$v/verify/default/demo"
  [bare-hyper]="http://127.0.0.1:$b/"
  [x402-express]="http://127.0.0.1:$e/paid/x"
  [x402-axum]="http://127.0.0.1:$a/paid/x"
)
HDR=(-H "X-Forwarded-Uri: /services/demo/v1/chat/completions" -H "X-Forwarded-Host: obol.stack" -H "X-Forwarded-Proto: https")
for name in "${!URL[@]}"; do
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${HDR[@]}" "${URL[$name]}" || true)
    [ "$code" = 402 ] && break
    sleep 0.1
  done
  [ "$code" = 402 ] || { log "$name answered $code, not 402"; cat "$tmp"/*.log >&2; exit 1; }
done

ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", v*1000 }'; }
echo "| server | connections | req/s | p50 ms | p99 ms | vs bare hyper |"
echo "|---|---|---|---|---|---|"
for c in $CONNECTIONS; do
  declare -A RPS=()
  for name in bare-hyper obol-verifier x402-axum x402-express; do
    wrk -t"$THREADS" -c"$c" -d2s "${HDR[@]}" "${URL[$name]}" >/dev/null
    wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency "${HDR[@]}" "${URL[$name]}" >"$tmp/$name-$c.txt"
    RPS[$name]=$(awk '/^Requests\/sec/ {print $2}' "$tmp/$name-$c.txt")
    p50=$(ms "$(awk '$1=="50%" {print $2}' "$tmp/$name-$c.txt")")
    p99=$(ms "$(awk '$1=="99%" {print $2}' "$tmp/$name-$c.txt")")
    ratio=$(awk -v x="${RPS[$name]}" -v y="${RPS[bare-hyper]}" 'BEGIN { printf "%.2f", x / y }')
    echo "| $name | $c | ${RPS[$name]} | $p50 | $p99 | $ratio |"
  done
  awk -v o="${RPS[obol-verifier]}" -v e="${RPS[x402-express]}" -v c="$c" \
    'BEGIN { printf "| obol-verifier / x402-express | %s | %.1fx | | | |\n", c, o / e }'
done
