#!/usr/bin/env bash
# What tracing costs the gateway: saturation throughput and latency (wrk) with span
# export off (no OTEL_EXPORTER_OTLP_ENDPOINT, the default) and on (every span exported
# over OTLP/HTTP to a sink that discards it, sampler always on), alternated ROUNDS
# times so drift on a shared machine hits both alike.
#
#   tests/load/tracing-overhead.sh            # 3 rounds of 15 s each way
#   ROUNDS=5 SECONDS_EACH=20 tests/load/tracing-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-15}
CONNECTIONS=${CONNECTIONS:-64}
GW_ADDR=127.0.0.1:18090
SINK_ADDR=127.0.0.1:18091
PREFIX="bench-otel-$(date +%s)"
TOKEN=bench-livetip-token
OUT=tests/load/out; mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p gateway -p hookwire-tests --bins
BIN=target/release

BODY='{"event":"payment_confirmed","payment":{"sender":"viewer_4242","receiver":"streamer_1","content":"HW-7K2M9QXA obrigado pela live, abraço!","amount":25.50,"currency":"BRL","timestamp":"2025-05-28T12:30:00.000Z","paid":true,"paymentId":"lt_pay_abc123def456","read":false,"extra":"padding-to-300"}}'
cat > "$OUT/livetip.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Livetip-Webhook-Secret-Token"] = "$TOKEN"
LUA

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$BIN/bench-otlp-sink" "$SINK_ADDR" & pids+=("$!")

run() { # label, extra env...
  local label=$1; shift
  env RUST_LOG=warn RATE_LIMIT_PER_IP=0 GATEWAY_ADDR=$GW_ADDR ADMIN_ADDR=127.0.0.1:0 AMQP_PREFIX=$PREFIX \
    LIVETIP_WEBHOOK_TOKEN=$TOKEN "$@" "$BIN/gateway" > "$OUT/gateway-$label.log" 2>&1 &
  local gw=$!
  for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://$GW_ADDR/readyz)" = 200 ] && break; sleep 0.2; done
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$OUT/livetip.lua" "http://$GW_ADDR/webhook" > "$OUT/wrk-otel-$label.txt"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  python3 - "$OUT/wrk-otel-$label.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rate:.0f} {ms(re.search(r'50%\s+(\S+)', t).group(1)):.2f} {ms(re.search(r'99%\s+(\S+)', t).group(1)):.2f} {m.group(1) if m else 0}")
PY
}

echo "== $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); $ROUNDS rounds x ${SECONDS_EACH}s, $CONNECTIONS connections"
off=(); on=()
for r in $(seq "$ROUNDS"); do
  o=$(run off); off+=("$o"); echo "round $r  export off: $o   (req/s p50 p99 non-2xx)"
  n=$(run on OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=always_on)
  on+=("$n"); echo "round $r  export on:  $n"
done
python3 - "${off[@]}" -- "${on[@]}" <<'PY'
import sys, statistics as st
args = sys.argv[1:]; i = args.index("--")
parse = lambda xs: [tuple(map(float, x.split())) for x in xs]
off, on = parse(args[:i]), parse(args[i+1:])
med = lambda rows, k: st.median(r[k] for r in rows)
ro, rn = med(off, 0), med(on, 0)
print(f"median req/s: off {ro:.0f}, on {rn:.0f} ({(rn/ro-1)*100:+.1f}%)")
print(f"median p99 ms: off {med(off,2):.2f}, on {med(on,2):.2f}")
PY
