#!/usr/bin/env bash
# What tracing costs the gateway: saturation throughput and latency (wrk) with the SDK
# disabled, with export off (no OTEL_EXPORTER_OTLP_ENDPOINT, the default: the same code
# path, so it measures the machine's run-to-run noise) and with export on (every span
# exported over OTLP/HTTP to a sink that discards it, sampler always on), alternated
# ROUNDS times so drift on a shared machine hits all alike.
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
  # Every run starts on empty queues: a queue grown by earlier runs slows the broker
  # and would bias whichever run comes later.
  "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null
  python3 - "$OUT/wrk-otel-$label.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)); p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
print(f"{rate:.0f} {p50:.2f} {p99:.2f} {m.group(1) if m else 0}")
PY
}

echo "== $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); $ROUNDS rounds x ${SECONDS_EACH}s, $CONNECTIONS connections"
off=(); on=(); none=()
for r in $(seq "$ROUNDS"); do
  x=$(run none OTEL_SDK_DISABLED=true); none+=("$x"); echo "round $r  no OTel layer: $x   (req/s p50 p99 non-2xx)"
  o=$(run off); off+=("$o"); echo "round $r  export off: $o"
  n=$(run on OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=always_on)
  on+=("$n"); echo "round $r  export on:  $n"
done
python3 - "${none[@]}" -- "${off[@]}" -- "${on[@]}" <<'PY'
import sys, statistics as st
args = " ".join(sys.argv[1:]).split(" -- ")
groups = []
for chunk in args:
    vals = list(map(float, chunk.split()))
    groups.append([tuple(vals[i:i + 4]) for i in range(0, len(vals), 4)])
none, off, on = groups
med = lambda rows, k: st.median(r[k] for r in rows)
base = med(none, 0)
for name, rows in (("OTEL_SDK_DISABLED=true", none), ("export off (default; same path: noise control)", off), ("export on, always_on sampler", on)):
    r = med(rows, 0)
    print(f"{name:40s} median {r:7.0f} req/s ({(r/base-1)*100:+5.1f}%)  median p99 {med(rows, 2):6.2f} ms")
PY
