#!/usr/bin/env bash
# The worker's throughput against what PostgreSQL and RabbitMQ can do on this machine,
# all measured in one run (ratios, not absolute figures, are what compare across runs):
#   1. events/s from request to committed row with 1, 2 and 4 worker processes: EVENTS
#      LiveTip payment_confirmed events (each creates a payment) are accepted by the
#      gateway with no worker running, then the workers start and drain them (events/s
#      between the first batch's transaction and the last; also from start-up); per
#      event: commits and rows, and the mean batch size;
#   2. backlog: BACKLOG events queued during an outage, drained by one worker, beside a
#      steady stream (events sent while the worker runs), with the broker's memory;
#   3. latency at 100 events/s: the gateway's receipt to the row marked done, p50/p99;
#   4. memory: the worker's peak RSS draining bodies of 1 MiB (largest batch and
#      prefetch);
#   5. the database's ceiling: pgbench writing the same rows per event (inbox row with
#      its 300-byte payload, payment, binding, three log rows, one set lookup by LiveTip
#      id) 64 events per transaction from 4 clients, on the same tables;
#   6. the broker's consume ceiling: a bare consumer with the worker's prefetch, one
#      `multiple` ack per 64.
# The workers connect with sslmode=disable: sqlx 0.9.0 no longer sets TCP_NODELAY, and
# over TLS (the default `prefer`, with the local server's ssl=on) a multi-record write
# waits on Nagle's algorithm (transact-rs/sqlx#4335). One run over TLS is printed too.
#   tests/load/end-to-end.sh   (EVENTS=20000 BACKLOG=100000 WORKERS="1 2 4" BASELINE_SECONDS=15
#                               SECTIONS="throughput tls backlog latency memory ceiling broker")
# BIN=<dir> runs other builds' gateway and worker (an A/B of, say, SECTIONS=latency).
source "$(dirname "$0")/lib.sh"
SECTIONS=" ${SECTIONS:-throughput tls backlog latency memory ceiling broker} "
run() { [[ $SECTIONS == *" $1 "* ]]; }
DB_QUERY="?sslmode=disable"
EVENTS=${EVENTS:-20000}
BACKLOG=${BACKLOG:-100000}
BASELINE_SECONDS=${BASELINE_SECONDS:-15}
WORKERS=${WORKERS:-"1 2 4"}
BATCH=64   # the worker's default WORKER_BATCH_SIZE
GW=127.0.0.1:18110
ensure_tools
echo "== $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); RabbitMQ $(rabbitmqctl -q version 2>/dev/null || echo '?'), $(psql -tA -h 127.0.0.1 -U postgres -c 'SHOW server_version')"
livetip_body 300 BENCH_ID > "$OUT/e2e-body.json"
db_stats() { # -> "commits inserted updated" so far in the bench database
  psql -tA -F' ' -h 127.0.0.1 -U postgres -d postgres -c \
    "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database WHERE datname = '$BENCH_DB'"
}
mean_batch() { # metrics port -> mean events per transaction
  curl -s "127.0.0.1:$1/metrics" | awk '/^hookwire_worker_batch_size_sum/{s=$2} /^hookwire_worker_batch_size_count/{c=$2} END{if (c) printf "%.1f", s/c; else print "?"}'
}
stop_all() {
  for p in "${WORKER_PIDS[@]}" "$GATEWAY_PID"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null; BENCH_DB=""
  "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null
}
rate() { python3 -c "print(round($1/($3-$2)))"; }

# --- 1. throughput with 1, 2 and 4 workers
declare -A RATE WALL
run throughput || WORKERS=""
for n in $WORKERS; do
  create_db; start_gateway "$GW"; fill "fill-$n" "$EVENTS"
  WORKER_PIDS=(); WORKER_PORTS=()
  sleep 1  # statistics are flushed to pg_stat_database about once a second
  read -r c0 i0 u0 < <(db_stats)
  start=$(date +%s.%N)
  for i in $(seq "$n"); do start_worker $((19100 + i)); done
  wait_done "$EVENTS"; end=$DONE_AT
  rss=""; for p in "${WORKER_PIDS[@]}"; do rss+="$(hwm_mib "$p") "; done
  WALL[$n]=$(rate "$EVENTS" "$start" "$end")
  # The drain itself, from the first batch's transaction to the last: a batch stamps
  # processed_at on its rows when its transaction starts (an event handled alone, when
  # it finishes). The wall figure also counts the workers' start-up (connections,
  # topology) and this script's 0.2 s polling, which pgbench's tps, the ceiling's
  # figure, leaves out ("without initial connection time"). The events counted are
  # those stamped before the last stamp, so the span and the count match.
  RATE[$n]=$(psql -tA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c \
    "WITH done AS (SELECT processed_at FROM webhook_events WHERE status IN ('processed','ignored'))
     SELECT coalesce(round(count(*) FILTER (WHERE processed_at < (SELECT max(processed_at) FROM done))
       / nullif(extract(epoch FROM max(processed_at) - min(processed_at)), 0)), 0) FROM done")
  batch=$(mean_batch 19101)
  # A backend reports its counts at most once a second, and an idle one only after
  # 10 s: stopping the workers makes theirs report (at exit) before they are read.
  for p in "${WORKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  WORKER_PIDS=()
  sleep 1
  read -r c1 i1 u1 < <(db_stats)
  printf '%s worker(s): %5s events/s (first to last transaction; %s from start-up to the last row); mean batch %s events; worker RSS peak MiB: %s\n' \
    "$n" "${RATE[$n]}" "${WALL[$n]}" "$batch" "$rss"
  # The run's status polls commit too: commits per event are an upper bound.
  python3 -c "e=$EVENTS; print(f'   per event: {($c1-$c0)/e:.3f} commits, {($i1-$i0)/e:.2f} rows inserted, {($u1-$u0)/e:.2f} updated')"
  stop_all
done
ONE=${RATE[1]:-0}
if run tls; then
  DB_QUERY=""
  create_db; start_gateway "$GW"; fill "fill-tls" "$EVENTS"
  WORKER_PIDS=(); WORKER_PORTS=(); start=$(date +%s.%N); start_worker 19109
  wait_done "$EVENTS"; end=$DONE_AT
  echo "1 worker over TLS (sslmode=prefer, sqlx without TCP_NODELAY): $(rate "$EVENTS" "$start" "$end") events/s"
  stop_all
  DB_QUERY="?sslmode=disable"
fi

# --- 2. backlog: a deep queue drains like a steady stream
if run backlog; then
  create_db; start_gateway "$GW"
  WORKER_PIDS=(); WORKER_PORTS=(); start_worker 19111
  fill steady "$EVENTS"   # sent while the worker runs
  wait_done "$EVENTS"
  steady=$(psql -tA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c \
    "SELECT round(count(*) / greatest(extract(epoch FROM max(processed_at) - min(processed_at)), 0.001)) FROM webhook_events")
  kill "${WORKER_PIDS[0]}"; wait "${WORKER_PIDS[0]}" 2>/dev/null || true; WORKER_PIDS=(); WORKER_PORTS=()
  beam=$(pgrep -f beam.smp | head -1)
  fill backlog "$BACKLOG"
  broker_rss=$(rss_mib "$beam")
  start=$(date +%s.%N); start_worker 19112
  wait_done $((EVENTS + BACKLOG)) "$EVENTS"; end=$DONE_AT
  deep=$(rate "$BACKLOG" "$start" "$end")
  echo "backlog: steady stream $steady events/s; $BACKLOG queued during an outage drained at $deep events/s (ratio $(python3 -c "print(f'{$deep/max($steady,1):.2f}')")); broker RSS with the backlog queued: $broker_rss MiB"
  stop_all
fi

# --- 3. latency at 100 events/s: receipt at the gateway to the row marked done
if run latency; then
  create_db; start_gateway "$GW"
  WORKER_PIDS=(); WORKER_PORTS=(); start_worker 19113
  sleep 2
  k6_fixed_rate "http://$GW/webhook" 100 20 "$OUT/e2e-body.json" latency > /dev/null
  wait_done 2000
  psql -tA -F' ' -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c \
    "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), count(*)
     FROM (SELECT extract(epoch FROM processed_at - received_at) * 1000 AS ms FROM webhook_events) t" |
    { read -r p50 p99 count; echo "latency at 100 events/s ($count events): gateway receipt to row done p50 ${p50} ms, p99 ${p99} ms; mean batch $(mean_batch 19113)"; }
  stop_all
fi

# --- 4. memory: bodies of 1 MiB (JSON padded with whitespace) fill every slot's prefetch
if run memory; then
  create_db; start_gateway "$GW"
  python3 - "$OUT/e2e-body.json" > "$OUT/e2e-big.json" <<'PY'
import sys
body = open(sys.argv[1]).read()
sys.stdout.write(body[:-1] + " " * (1_048_576 - len(body) - 64) + "}")
PY
  cp "$OUT/e2e-body.json" "$OUT/e2e-body.small"; cp "$OUT/e2e-big.json" "$OUT/e2e-body.json"
  BIG=$((3 * 128 + 100))
  fill big "$BIG"
  cp "$OUT/e2e-body.small" "$OUT/e2e-body.json"
  WORKER_PIDS=(); WORKER_PORTS=(); start_worker 19114
  wait_done "$BIG"
  echo "memory: $BIG bodies of 1 MiB drained; worker RSS peak $(hwm_mib "${WORKER_PIDS[0]}") MiB (3 slots x 128 prefetch, batches of at most 4 MiB)"
  stop_all
fi

# --- 5. the database's ceiling: the same rows per event, 64 events per transaction
if run ceiling; then
  create_db
  psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "CREATE SEQUENCE bench_seq"
  cat > "$OUT/pgbench-batch.sql" <<SQL
  BEGIN;
  SELECT count(*) FROM livetip_bindings WHERE livetip_payment_id IN (SELECT 'pg-' || (random() * 1e7)::bigint FROM generate_series(1, $BATCH));
  INSERT INTO webhook_events (id, provider, event, dedupe_key, payload, received_at, status, attempts, duplicates, created_at, updated_at, processed_at)
    SELECT gen_random_uuid(), 'livetip', 'payment_confirmed', 'pg:' || nextval('bench_seq'), convert_to(repeat('x', 300), 'UTF8'), now(), 'processed', 1, 0, now(), now(), now() FROM generate_series(1, $BATCH);
  WITH s AS (SELECT nextval('bench_seq') AS n FROM generate_series(1, $BATCH)),
    p AS (INSERT INTO payments (id, user_name, amount, currency, status, livetip_payment_id, matched_by, created_at, updated_at, paid_at, received_amount, received_currency)
          SELECT 'PG' || n, 'viewer_4242', '25.50', 'BRL', 'completed', 'pg-' || n, 'created', now(), now(), now(), '25.50', 'BRL' FROM s
          RETURNING id, livetip_payment_id)
    INSERT INTO livetip_bindings (livetip_payment_id, payment_id, created_at) SELECT livetip_payment_id, id, now() FROM p;
  INSERT INTO webhook_logs (id, timestamp, type, event, status, data, provider)
    SELECT gen_random_uuid(), now(), 'webhook', 'payment_confirmed', 'received', repeat('x', 300), 'livetip' FROM generate_series(1, $((BATCH * 3)));
  COMMIT;
SQL
  # The rows as the worker writes them, column for column: the script above leaves
  # the columns a worker fills with scattered values NULL (trace and request ids, the
  # payment's id and text) or sequential (dedupe keys), so its index entries all land
  # at the end of each index; it also takes random ids where the worker's are
  # time-ordered. Here: dedupe keys are sha256 hex, trace ids 32 random hex digits
  # shared by the event's three log rows, request ids random, payment ids random,
  # event and log ids time-ordered, log data of the three sizes the worker writes.
  # Payment ids are scattered but unique (a multiplicative hash of the sequence): random
  # ones of 8 hex digits collide within a run, and pgbench drops the client that hits
  # one.
  # The lookup by LiveTip id reads the index, as the worker's does (worker/src/batch.rs,
  # custom_plans): the bindings table is never analysed during a run, and the planner
  # then scans it whole, which cost 10.5 ms a batch at 34,000 bindings against 1.2 ms
  # by the index (session 12); over a 15 s run the scan held the ceiling 6-7 % low, a
  # cost the worker never pays.
  cat > "$OUT/pgbench-rows.sql" <<SQL
  BEGIN;
  SET LOCAL enable_seqscan = off;
  SELECT count(*) FROM livetip_bindings WHERE livetip_payment_id IN (SELECT 'pg-' || (random() * 1e7)::bigint FROM generate_series(1, $BATCH));
  SET LOCAL enable_seqscan TO DEFAULT;
  WITH e AS MATERIALIZED (
      SELECT n, lpad(to_hex(n), 32, '0')::uuid AS id, md5(random()::text) AS trace, gen_random_uuid() AS request
      FROM (SELECT nextval('bench_seq') AS n FROM generate_series(1, $BATCH)) s),
    w AS (INSERT INTO webhook_events (id, provider, event, dedupe_key, provider_event_id, payload, received_at, status, attempts, duplicates, trace_id, request_id, processed_by, created_at, updated_at, processed_at)
          SELECT id, 'livetip', 'payment_confirmed', 'sha256:' || encode(sha256(n::text::bytea), 'hex'), 'pg-' || n, convert_to(repeat('x', 300), 'UTF8'), now(), 'processed', 1, 0, trace, request, 'pgbench', now(), now(), now() FROM e),
    p AS (INSERT INTO payments (id, user_name, amount, currency, status, livetip_payment_id, content, matched_by, created_at, updated_at, paid_at, received_amount, received_currency)
          SELECT 'HW-' || upper(lpad(to_hex((n * 2654435761) % 4294967296), 8, '0')), 'viewer_4242', '25.50', 'BRL', 'completed', 'pg-' || n, repeat('x', 170), 'created', now(), now(), now(), '25.50', 'BRL' FROM e
          RETURNING id, livetip_payment_id),
    b AS (INSERT INTO livetip_bindings (livetip_payment_id, payment_id, created_at) SELECT livetip_payment_id, id, now() FROM p)
  INSERT INTO webhook_logs (id, timestamp, type, event, status, data, ip, provider, webhook_event_id, trace_id)
    SELECT lpad(to_hex(e.n * 3 + t.k), 32, '0')::uuid, now(), t.type, 'payment_confirmed', t.status, repeat('x', t.len), '127.0.0.1', 'livetip', e.id, e.trace
    FROM e CROSS JOIN (VALUES (0, 'webhook', 'received', 300), (1, 'payment_create', 'success', 130), (2, 'response', 'success', 90)) AS t(k, type, status, len)
    ORDER BY e.n, t.k;
  COMMIT;
SQL
  pg_rate() { # script -> events/s; a client that failed makes the figure meaningless
    local out tps
    out=$(pgbench -n -h 127.0.0.1 -U postgres -c 4 -j 2 -T "$BASELINE_SECONDS" -f "$1" "$BENCH_DB" 2>&1) || true
    if grep -qiE "aborted|error" <<<"$out"; then echo "pgbench failed with $1:" >&2; grep -iE "aborted|error" <<<"$out" | head -3 >&2; exit 1; fi
    tps=$(awk '/^tps = /{printf "%.0f", $3}' <<<"$out")
    echo $((tps * BATCH))
  }
  OLD_CEILING=$(pg_rate "$OUT/pgbench-batch.sql")
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null; BENCH_DB=""
  create_db
  psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "CREATE SEQUENCE bench_seq"
  CEILING=$(pg_rate "$OUT/pgbench-rows.sql")
  echo "database ceiling: pgbench, 4 clients, $BATCH events per transaction, the worker's rows column for column: $CEILING events/s"
  echo "   (the same tables with sessions 5-7's script, NULL or sequential keys: $OLD_CEILING events/s)"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null; BENCH_DB=""
fi

# --- 6. the broker's consume ceiling
if run broker; then
  echo "broker consume ceiling (3 slots x 128 prefetch, a multiple ack per $BATCH): $("$BIN/bench-broker-ceiling" --consume 100000 --prefetch 384 --ack-every "$BATCH" --in-flight 256 --envelope-headers)"
fi

CEILING=${CEILING:-0}
if run throughput && run ceiling; then
  # Sessions up to 11 compared the wall figure: printed too, to follow the series.
  python3 -c "print(f'one worker / database ceiling = {$ONE/max($CEILING,1):.2f} (target >= 0.5; from start-up {${WALL[1]:-0}/max($CEILING,1):.2f}; against the sessions 5-7 script {$ONE/max($OLD_CEILING,1):.2f}); one worker: $ONE events/s (target >= 5000)')"
fi
