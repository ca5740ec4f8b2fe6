#!/usr/bin/env bash
# The publish path's levers, measured side by side in interleaved rounds (issue 16).
#
#   tests/load/gateway-levers.sh                       # defaults: 2 rounds, 10 s each
#   ROUNDS=3 SECONDS_EACH=15 CHANNELS="8 2 16" tests/load/gateway-levers.sh
#   VARIANTS="TOKIO_WORKER_THREADS=2;TOKIO_WORKER_THREADS=1" PUBLISHER=0 tests/load/gateway-levers.sh
#   ROUNDS=1 CHANNELS=8 PUBLISHER=0 PERF=dwarf tests/load/gateway-levers.sh   # where the gateway's CPU goes
#   BODIES=livetip ...                                 # LiveTip bodies only (one work queue), as gateway-bench's headline
#   RATE=2000 VARIANTS="TOKIO_WORKER_THREADS=2;TOKIO_WORKER_THREADS=1" tests/load/gateway-levers.sh
#                                                      # the fixed-rate tail instead of saturation
#
# Each round runs, one after the other on the local broker:
#   - the gateway at saturation (wrk, 64 connections, the bench's mixed Pluggy/LiveTip
#     bodies) once per AMQP_PUBLISH_CHANNELS value in CHANNELS, or once per variant in
#     VARIANTS (environment settings for the gateway, variants separated by ';');
#   - the bare publisher (64 in flight, 8 channels) in each message shape: default
#     exchange, topic exchange, direct exchange, envelope headers, topic with headers,
#     that without `mandatory`, and the gateway's own (direct, BCC, headers);
#     PUBLISHER=0 leaves these out.
# Prints req/s or msg/s (the gateway's with wrk's p99), CPU microseconds per message of
# the process measured and of the broker, and for the gateway how many TCP data segments it sent the broker per
# message (1.0: every publish went out alone; lower: publishes shared a segment).
# RATE=<n> measures the fixed-rate tail instead (issue 16's second latency target): each
# variant serves LiveTip bodies from bench-open-loop at n requests/s for SECONDS_EACH,
# and each round ends with the bare publisher's own confirm latency at the same rate
# (topic exchange, envelope headers: the target's baseline), so that every ratio
# compares figures of one round.
# PERF=dwarf (as in drain-profile.sh) records each gateway run with call graphs for 4 s
# from its third second (perf record --call-graph dwarf, the gateway alone; needs
# SECONDS_EACH >= 8). Files: tests/load/out/perf-gateway-<round>-<n>.data, n counting
# the runs profiled so far; read one with perf report -i <file> --no-children. The
# profiler takes CPU from the gateway, so a profiled run shows where the time goes,
# not figures to compare.
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-2}
SECONDS_EACH=${SECONDS_EACH:-10}
CHANNELS=${CHANNELS:-"8 2 1"}
VARIANTS=${VARIANTS:-$(for c in $CHANNELS; do printf 'AMQP_PUBLISH_CHANNELS=%s;' "$c"; done)}
PUBLISHER=${PUBLISHER:-1}
GW_ADDR=127.0.0.1:18082
PLUGGY_SECRET=bench-pluggy-secret
ensure_tools
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
broker_pid() { pgrep -u rabbitmq -o beam.smp; }
us() { python3 -c "print(round(($2 - $1) / $(getconf CLK_TCK) * 1e6 / max($3, 1)))"; } # ticks0 ticks1 n

printf '%s' "$LIVETIP_BODY" > "$OUT/livetip.json"
if [ "${BODIES:-mixed}" = livetip ]; then write_livetip_lua "$OUT/levers.lua"; else write_mixed_lua "$OUT/levers.lua"; fi
PROFILES=0
if [ "${PERF:-}" = dwarf ]; then
  command -v perf > /dev/null || { echo "PERF=dwarf needs perf (linux-perf)" >&2; exit 1; }
  [ "$SECONDS_EACH" -ge 8 ] || { echo "PERF=dwarf needs SECONDS_EACH >= 8: it records seconds 3-7" >&2; exit 1; }
fi

# TCP data segments sent so far on the process's connections to the broker.
io_writes() {
  ss -tinpH state established "( dport = :${AMQP_PORT} )" 2>/dev/null | awk -v pid="pid=$1," '
    index($0, pid) { want = 1; next }
    want { if (match($0, /data_segs_out:[0-9]+/)) s += substr($0, RSTART + 14, RLENGTH - 14); want = 0 }
    END { print s + 0 }'
}
AMQP_PORT=$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$AMQP_URL")

profile_done() { # profiler pid, profile path
  [ -z "$1" ] || wait "$1" || echo "  perf record failed: see $2.log" >&2
}

gateway_round() { # round, "NAME=value ..." for the gateway's environment
  local round=$1; shift
  # shellcheck disable=SC2086 # one word per setting
  start_gateway "$GW_ADDR" $1 AMQP_URL="$AMQP_URL" \
    PLUGGY_SIGNING_KEY=$PLUGGY_SECRET PLUGGY_WEBHOOK_SECRET=bench-pluggy-header
  local gw=$GATEWAY_PID g0 g1 b0 b1 w0 w1 n rate
  g0=$(cpu_ticks "$gw"); b0=$(cpu_ticks "$(broker_pid)"); w0=$(io_writes "$gw")
  local profiler="" profile=""
  if [ "${PERF:-}" = dwarf ]; then
    PROFILES=$((PROFILES + 1))
    profile="$OUT/perf-gateway-$round-$PROFILES"
    (sleep 3; perf record -F 999 --call-graph dwarf,16384 -p "$gw" \
      -o "$profile.data" -- sleep 4 > "$profile.log" 2>&1) &
    profiler=$!
  fi
  if [ -n "${RATE:-}" ]; then
    "$BIN/bench-open-loop" --url "http://$GW_ADDR/webhook" --rate "$RATE" --seconds "$SECONDS_EACH" \
      --body-file "$OUT/livetip.json" --header 'Content-Type: application/json' \
      --header "X-Livetip-Webhook-Secret-Token: $TOKEN" > "$OUT/levers-open-loop.txt"
    g1=$(cpu_ticks "$gw"); b1=$(cpu_ticks "$(broker_pid)")
    profile_done "$profiler" "$profile"
    kill "$gw"; wait "$gw" 2>/dev/null || true
    "$BIN/bench-broker-ceiling" --url "$AMQP_URL" --delete-topology "$PREFIX"
    n=$(sed -nE 's/.*requests=([0-9]+).*/\1/p' "$OUT/levers-open-loop.txt")
    [ -n "$n" ] || { echo "  bench-open-loop printed no figures: see $OUT/levers-open-loop.txt" >&2; exit 1; }
    printf '  %-34s %s  cpu_us gateway/broker %s/%s\n' "gateway, $1" \
      "$(sed -nE 's/.*requests=([0-9]+) failed=([0-9]+) dropped=([0-9]+) late=([0-9]+) p50=([0-9.]+)ms p99=([0-9.]+)ms p99\.9=([0-9.]+)ms.*/p50 \5 ms  p99 \6 ms  p99.9 \7 ms  failed \2 dropped \3 late \4/p' "$OUT/levers-open-loop.txt")" \
      "$(us "$g0" "$g1" "$n")" "$(us "$b0" "$b1" "$n")"
    return
  fi
  wrk -t2 -c64 -d"${SECONDS_EACH}s" --latency -s "$OUT/levers.lua" "http://$GW_ADDR" > "$OUT/levers-wrk.txt"
  g1=$(cpu_ticks "$gw"); b1=$(cpu_ticks "$(broker_pid)"); w1=$(io_writes "$gw")
  local p99
  read -r rate p99 n < <(wrk_summary "$OUT/levers-wrk.txt" | awk '{print $1, $3, $5}')
  profile_done "$profiler" "$profile"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  "$BIN/bench-broker-ceiling" --url "$AMQP_URL" --delete-topology "$PREFIX"
  printf '  %-34s %7s /s  p99 %6s ms  cpu_us gateway/broker %s/%s  segments to the broker per msg %s\n' "gateway, $1" "$rate" "$p99" \
    "$(us "$g0" "$g1" "$n")" "$(us "$b0" "$b1" "$n")" "$(python3 -c "print(round(($w1 - $w0) / max($n, 1), 2))")"
}

ceiling_round() { # label args...
  local label=$1; shift
  local b0 b1 out n
  b0=$(cpu_ticks "$(broker_pid)")
  out=$(/usr/bin/time -f 'TIME %U %S' "$BIN/bench-broker-ceiling" --url "$AMQP_URL" --in-flight 64 --seconds "$SECONDS_EACH" "$@" 2>&1)
  b1=$(cpu_ticks "$(broker_pid)")
  n=$(grep '^broker-' <<<"$out" | sed -E 's/.*confirmed=([0-9]+).*/\1/')
  printf '  %-34s %7s /s  cpu_us publisher/broker %s/%s\n' "$label" \
    "$(grep '^broker-' <<<"$out" | sed -E 's/.*rate=([0-9]+).*/\1/')" \
    "$(awk -v n="$n" '/^TIME/{printf "%d", ($2 + $3) * 1e6 / n}' <<<"$out")" "$(us "$b0" "$b1" "$n")"
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%FT%TZ); rabbitmq $(rabbitmqctl -q version 2>/dev/null)"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  IFS=';' read -ra variants <<<"$VARIANTS"
  for v in "${variants[@]}"; do [ -z "$v" ] || gateway_round "$round" "$v"; done
  if [ -n "${RATE:-}" ]; then
    line=$("$BIN/bench-broker-ceiling" --url "$AMQP_URL" --rate "$RATE" --seconds "$SECONDS_EACH" --topic --envelope-headers | grep '^broker-') ||
      { echo "  the publisher's fixed-rate run printed no figures" >&2; exit 1; }
    printf '  %-34s %s\n' "publisher alone, confirm latency" "$(grep -oE 'p50=[0-9.]+ms p99=[0-9.]+ms( p99\.9=[0-9.]+ms)?' <<<"$line")"
    continue
  fi
  [ "$PUBLISHER" = 1 ] || continue
  ceiling_round "publisher, default exchange"
  ceiling_round "publisher, topic exchange" --topic
  ceiling_round "publisher, direct exchange" --direct
  ceiling_round "publisher, envelope headers" --envelope-headers
  ceiling_round "publisher, topic + headers" --topic --envelope-headers
  ceiling_round "publisher, topic + headers, no mandatory" --topic --envelope-headers --no-mandatory
  ceiling_round "publisher, ingest shape (direct, BCC, headers)" --direct --bcc --envelope-headers
done
