#!/usr/bin/env bash
# Soak: gateway and two workers at a steady open-loop rate for SOAK_SECONDS (default
# 600), sampling memory and open file descriptors every 30 s; at the end, every event
# answered 2xx must be a committed row (nothing lost) and the samples should be flat.
#   tests/load/soak.sh        (SOAK_SECONDS=600 RATE=200)
source "$(dirname "$0")/lib.sh"
SOAK_SECONDS=${SOAK_SECONDS:-600}
RATE=${RATE:-200}
GW=127.0.0.1:18120
ensure_tools
echo "== $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); $RATE req/s for ${SOAK_SECONDS}s"
create_db
start_gateway "$GW"
WORKER_PIDS=()
start_worker 19201; start_worker 19202
livetip_body 300 BENCH_ID > "$OUT/soak-body.json"
k6_fixed_rate "http://$GW/webhook" "$RATE" "$SOAK_SECONDS" "$OUT/soak-body.json" soak > "$OUT/soak-k6.txt" &
k6=$!
printf '%6s | %-22s | %-22s | %-22s | %s\n' t "gateway RSS MiB / fds" "worker 1 RSS / fds" "worker 2 RSS / fds" "rows"
t=0
while kill -0 "$k6" 2>/dev/null; do
  printf '%5ss | %10s / %-9s | %10s / %-9s | %10s / %-9s | %s\n' "$t" \
    "$(rss_mib "$GATEWAY_PID")" "$(fds "$GATEWAY_PID")" \
    "$(rss_mib "${WORKER_PIDS[0]}")" "$(fds "${WORKER_PIDS[0]}")" \
    "$(rss_mib "${WORKER_PIDS[1]}")" "$(fds "${WORKER_PIDS[1]}")" "$(finished_events)"
  sleep 30; t=$((t + 30))
done
wait "$k6" || true
read -r p50 p99 p999 reqs failed dropped < "$OUT/soak-k6.txt"
accepted=$((reqs - failed))
for _ in $(seq 300); do [ "$(finished_events)" -ge "$accepted" ] && break; sleep 1; done
rows=$(finished_events)
echo "latency p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms; requests $reqs, failed $failed, dropped $dropped"
echo "books: 2xx $accepted, rows $rows -> $( [ "$rows" -eq "$accepted" ] && echo 'nothing lost, nothing doubled' || echo MISMATCH)"
