#!/usr/bin/env bash
# Where one worker's drain spends CPU: EVENTS LiveTip events (each creating a payment)
# are queued through the gateway with no worker running, then one worker drains them.
# Prints events/s, the mean batch, and the CPU each side spent per event (the worker,
# every PostgreSQL process, the broker), read from /proc before and after the drain.
#   tests/load/drain-profile.sh          (EVENTS=30000)
# Options:
#   PGPORT=<port>  use a PostgreSQL on that port (say, a private one started with
#                  shared_preload_libraries = 'pg_stat_statements' and the extension
#                  created in template1): prints the statements' times too
#   PERF=1         a system-wide perf profile of 4 s of the drain; PERF=dwarf: the
#                  worker alone, with call graphs (perf.data in tests/load/out/)
#   KEEP=1         keeps the database for inspection (its name is printed)
# Worker settings pass through the environment (WORKER_LIVETIP_PREFETCH=64 ...), and
# BIN=<dir> runs another build: interleave runs to compare, the machine's speed moves.
source "$(dirname "$0")/lib.sh"
DB_QUERY="?sslmode=disable"
EVENTS=${EVENTS:-30000}
GW=127.0.0.1:18110
ensure_tools
livetip_body 300 BENCH_ID > "$OUT/e2e-body.json"
create_db; start_gateway "$GW"
fill drain "$EVENTS"
sleep 1
statements() { [ -n "${PGPORT:-}" ] && psql -h 127.0.0.1 -U postgres -d "$BENCH_DB" "$@"; }
statements -qc "SELECT pg_stat_statements_reset()" > /dev/null || true
postgres_ticks() { for p in $(pgrep -x postgres); do cpu_ticks "$p" 2>/dev/null || true; done | awk '{s+=$1} END{print s+0}'; }
broker_ticks() { cpu_ticks "$(pgrep -u rabbitmq -o beam.smp)"; }
p0=$(postgres_ticks); b0=$(broker_ticks)
start=$(date +%s.%N)
start_worker 19101; W=${WORKER_PIDS[0]}
PERF_PID=""
case "${PERF:-}" in
  "") ;;
  dwarf) (sleep 1.5; perf record -F 499 --call-graph dwarf,16384 -p "$W" -o "$OUT/perf.data" -- sleep 3 > /dev/null 2>&1) & PERF_PID=$! ;;
  *) (sleep 1.5; perf record -F 999 -g -a -o "$OUT/perf.data" -- sleep 4 > /dev/null 2>&1) & PERF_PID=$! ;;
esac
wait_done "$EVENTS"; end=$DONE_AT
w=$(cpu_ticks "$W"); p1=$(postgres_ticks); b1=$(broker_ticks)
batch=$(curl -s 127.0.0.1:19101/metrics | awk '/^hookwire_worker_batch_size_sum/{s=$2} /^hookwire_worker_batch_size_count/{c=$2} END{if (c) printf "%.1f", s/c; else print "?"}')
python3 -c "
n, t, us = $EVENTS, $end - $start, 1e6 / $(getconf CLK_TCK)
print(f'{n/t:.0f} events/s, mean batch $batch; CPU per event: worker {$w*us/n:.0f} µs, PostgreSQL {($p1-$p0)*us/n:.0f} µs, broker {($b1-$b0)*us/n:.0f} µs')"
statements -c "SELECT calls, round(total_exec_time::numeric, 1) AS ms, round((total_exec_time / calls)::numeric, 3) AS ms_per_call, rows,
  left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12" || true
if [ -n "$PERF_PID" ]; then wait "$PERF_PID" || echo "perf record failed (is perf installed and allowed?)" >&2; fi
if [ -n "${KEEP:-}" ]; then echo "database kept: $BENCH_DB"; BENCH_DB=""; fi
