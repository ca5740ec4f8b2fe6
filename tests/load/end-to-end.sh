#!/usr/bin/env bash
# Events per second from request to committed row, with 1, 2 and 4 worker processes
# on PostgreSQL. For each count: EVENTS distinct LiveTip events are accepted by the
# gateway with no worker running (queued), then the workers start and the time until
# every event's row is committed is measured. Also prints the workers' memory.
#   tests/load/end-to-end.sh        (EVENTS=5000 WORKERS="1 2 4")
source "$(dirname "$0")/lib.sh"
EVENTS=${EVENTS:-5000}
WORKERS=${WORKERS:-"1 2 4"}
GW=127.0.0.1:18110
ensure_tools
echo "== $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); $EVENTS events per run, LiveTip payment_confirmed (creates a payment)"
livetip_body 300 BENCH_ID > "$OUT/e2e-body.json"
cat > "$OUT/k6-fill.js" <<JS
import http from 'k6/http';
import exec from 'k6/execution';
const template = open('$PWD/$OUT/e2e-body.json');
export const options = { discardResponseBodies: true,
  scenarios: { fill: { executor: 'shared-iterations', vus: 32, iterations: $EVENTS, maxDuration: '10m' } },
  thresholds: { http_req_failed: ['rate==0'] } };
export default function () {
  const body = template.replace('BENCH_ID', 'e2e-' + exec.scenario.iterationInTest + '-' + __ENV.RUN);
  http.post('http://$GW/webhook', body, { headers: { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$TOKEN' } });
}
JS
for n in $WORKERS; do
  create_db
  start_gateway "$GW"
  RUN=$n "$K6" run --quiet -e RUN="$n" "$OUT/k6-fill.js" > "$OUT/k6-fill-$n.log" 2>&1 || { echo "fill failed: see $OUT/k6-fill-$n.log" >&2; exit 1; }
  WORKER_PIDS=()
  start=$(date +%s.%N)
  for i in $(seq "$n"); do start_worker $((19100 + i)); done
  while [ "$(finished_events)" -lt "$EVENTS" ]; do sleep 0.2; done
  end=$(date +%s.%N)
  rss=""; for p in "${WORKER_PIDS[@]}"; do rss+="$(hwm_mib "$p") "; done
  rows=$(finished_events)
  printf '%s worker(s): %5.0f events/s (%s rows in %.1f s); worker RSS peak MiB: %s\n' \
    "$n" "$(python3 -c "print($EVENTS/($end-$start))")" "$rows" "$(python3 -c "print($end-$start)")" "$rss"
  for p in "${WORKER_PIDS[@]}" "$GATEWAY_PID"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null; BENCH_DB=""
  "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null
done
