#!/usr/bin/env bash
# Events per second from request to committed row, with 1, 2 and 4 worker processes
# on PostgreSQL. For each count: EVENTS distinct LiveTip events are accepted by the
# gateway with no worker running (queued), then the workers start and the time until
# every event's row is committed is measured. Also prints the workers' memory, and
# what the database did per event (commits, rows inserted and updated).
# Baseline in the same run: pgbench replays that same per-event write work (as many
# commits, inserts of ~300-byte rows and updates by key) with as many clients as the
# workers run events at once, so events/s is also a ratio of what PostgreSQL itself
# commits on this machine.
#   tests/load/end-to-end.sh        (EVENTS=5000 WORKERS="1 2 4" BASELINE_SECONDS=15)
source "$(dirname "$0")/lib.sh"
EVENTS=${EVENTS:-5000}
BASELINE_SECONDS=${BASELINE_SECONDS:-15}
CONCURRENCY=8   # the worker's default WORKER_LIVETIP_CONCURRENCY
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
db_stats() { # -> "commits inserted updated" so far in the bench database
  psql -tA -F' ' -h 127.0.0.1 -U postgres -d postgres -c \
    "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database WHERE datname = '$BENCH_DB'"
}
best=0
for n in $WORKERS; do
  create_db
  start_gateway "$GW"
  RUN=$n "$K6" run --quiet -e RUN="$n" "$OUT/k6-fill.js" > "$OUT/k6-fill-$n.log" 2>&1 || { echo "fill failed: see $OUT/k6-fill-$n.log" >&2; exit 1; }
  WORKER_PIDS=()
  sleep 1  # statistics are flushed to pg_stat_database about once a second
  read -r c0 i0 u0 < <(db_stats)
  start=$(date +%s.%N)
  for i in $(seq "$n"); do start_worker $((19100 + i)); done
  while [ "$(finished_events)" -lt "$EVENTS" ]; do sleep 0.2; done
  end=$(date +%s.%N)
  rss=""; for p in "${WORKER_PIDS[@]}"; do rss+="$(hwm_mib "$p") "; done
  rows=$(finished_events)
  rate=$(python3 -c "print(round($EVENTS/($end-$start)))")
  [ "$rate" -gt "$best" ] && best=$rate
  printf '%s worker(s): %5s events/s (%s rows in %.1f s); worker RSS peak MiB: %s\n' \
    "$n" "$rate" "$rows" "$(python3 -c "print($end-$start)")" "$rss"
  sleep 1
  read -r c1 i1 u1 < <(db_stats)
  # Per event, rounded up: the reads of the run (status polls) commit too, so commits
  # are an upper bound; inserts and updates are the workers' alone.
  per_commit=$(( (c1 - c0 + EVENTS - 1) / EVENTS )); per_insert=$(( (i1 - i0 + EVENTS - 1) / EVENTS )); per_update=$(( (u1 - u0 + EVENTS - 1) / EVENTS ))
  echo "   per event: $per_commit commits, $per_insert rows inserted, $per_update updated"
  for p in "${WORKER_PIDS[@]}" "$GATEWAY_PID"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null; BENCH_DB=""
  "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null
done

# --- baseline: the same write work per event, straight from pgbench
create_db
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c \
  "CREATE TABLE bench_rows (k bigint PRIMARY KEY, body text NOT NULL, n int NOT NULL DEFAULT 0)"
{
  echo '\set k random(1, 9000000000000000000)'
  inserts=$per_insert; updates=$per_update
  for t in $(seq "$per_commit"); do
    echo 'BEGIN;'
    # Spread inserts and updates over the commits; each insert has its own key.
    left=$((per_commit - t + 1)); ni=$(( (inserts + left - 1) / left )); nu=$(( (updates + left - 1) / left ))
    for j in $(seq "$ni"); do echo "INSERT INTO bench_rows (k, body) VALUES (:k + $t$j, repeat('x', 300)) ON CONFLICT DO NOTHING;"; done
    # The event's first row, as the worker updates its inbox row after the claim.
    for _ in $(seq "$nu"); do echo "UPDATE bench_rows SET n = n + 1 WHERE k = :k + 11;"; done
    inserts=$((inserts - ni)); updates=$((updates - nu))
    echo 'COMMIT;'
  done
} > "$OUT/pgbench-event.sql"
tps=$(pgbench -n -h 127.0.0.1 -U postgres -c "$CONCURRENCY" -j 2 -T "$BASELINE_SECONDS" -f "$OUT/pgbench-event.sql" "$BENCH_DB" 2>/dev/null \
  | awk '/^tps = /{printf "%.0f", $3}')
echo "baseline: pgbench, $CONCURRENCY clients, the per-event work above: $tps events/s"
python3 -c "print(f'best end-to-end / PostgreSQL baseline = {$best/$tps:.2f}')"
