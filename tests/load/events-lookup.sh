#!/usr/bin/env bash
# The admin API's event queries on a million events (issue 17), on the local PostgreSQL.
#
#   tests/load/events-lookup.sh            # EVENTS=1000000
#   BIN=target/debug EVENTS=200000 tests/load/events-lookup.sh
#
# Creates a private database with hookwire's schema, fills webhook_events with EVENTS
# rows (~300-byte payloads, spread over 30 days; 5 % Pluggy, 0.1 % item/deleted, 0.01 % dead) and webhook_logs with
# three entries per event, ANALYZEs, then prints each query the admin API issues with
# PostgreSQL's own execution time (EXPLAIN ANALYZE, median of 5 runs) and whether it
# used an index. Drops the database at the end.
source "$(dirname "$0")/lib.sh"
EVENTS=${EVENTS:-1000000}
[ -x "$BIN/worker" ] || cargo build --release -q -p worker --bin worker
create_db
sql() { psql -X -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v ON_ERROR_STOP=1 "$@"; }

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%FT%TZ); $(psql -X -At -h 127.0.0.1 -U postgres -d postgres -c 'SHOW server_version'); $EVENTS events"
started=$(date +%s)
sql <<SQL
INSERT INTO webhook_events (id, provider, event, dedupe_key, provider_event_id, pluggy_item_id,
  pluggy_account_id, payload, received_at, processed_at, status, attempts, duplicates, trace_id,
  request_id, created_at, updated_at)
SELECT gen_random_uuid(),
       CASE WHEN i % 20 = 0 THEN 'pluggy' ELSE 'livetip' END,
       CASE WHEN i % 1000 = 0 THEN 'item/deleted' WHEN i % 20 = 0 THEN 'transactions/created'
            ELSE 'payment_confirmed' END,
       'k' || i, 'pid-' || i,
       CASE WHEN i % 20 = 0 THEN 'item-' || (i / 20) % 5000 END,
       CASE WHEN i % 20 = 0 AND i % 1000 <> 0 THEN 'acct-' || (i / 20) % 20000 END,
       convert_to(rpad('{"event":"payment_confirmed","payment":{"paymentId":"pid-' || i || '"}}', 300, ' '), 'UTF8'),
       now() - (i || ' seconds')::interval * (2592000.0 / $EVENTS),
       now(),
       CASE WHEN i % 10000 = 5 THEN 'dead' WHEN i % 50 = 1 THEN 'ignored' ELSE 'processed' END, 1, 0,
       md5(i::text), gen_random_uuid(), now(), now()
FROM generate_series(1, $EVENTS) AS i;
INSERT INTO webhook_logs (id, timestamp, type, event, status, data, provider, webhook_event_id, trace_id)
SELECT gen_random_uuid(), e.received_at, t.type, e.event, 'success', '{}', e.provider, e.id, e.trace_id
FROM webhook_events e CROSS JOIN (VALUES ('webhook'), ('payment_create'), ('response')) AS t(type);
ANALYZE webhook_events; ANALYZE webhook_logs;
SQL
echo "filled in $(( $(date +%s) - started )) s"

pick() { sql -At -c "$1"; }
mid=$(( EVENTS / 2 ))
request_id=$(pick "SELECT request_id FROM webhook_events WHERE dedupe_key = 'k$mid'")
event_id=$(pick "SELECT id FROM webhook_events WHERE dedupe_key = 'k$mid'")
trace_id=$(pick "SELECT trace_id FROM webhook_events WHERE dedupe_key = 'k$mid'")
deep=$(pick "SELECT received_at || '|' || id FROM webhook_events WHERE dedupe_key = 'k$mid'")
deep_at=${deep%|*}; deep_id=${deep#*|}

measure() { # label query
  local times plan
  times=$(for _ in 1 2 3 4 5; do
    sql -At -c "EXPLAIN (ANALYZE, FORMAT JSON) $2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
  done | sort -n | sed -n 3p)
  plan=$(sql -At -c "EXPLAIN $2" | { grep -oE '(Index|Index Only) Scan (Backward )?using [a-z_]+|Bitmap Index Scan on [a-z_]+|Seq Scan on [a-z_]+' || true; } | sort -u | paste -sd, -)
  printf '  %-52s %8.3f ms   %s\n' "$1" "$times" "$plan"
}
echo "PostgreSQL execution time, median of 5:"
measure "/events/{request id}" "SELECT * FROM webhook_events WHERE id = '$request_id' OR request_id = '$request_id' ORDER BY created_at DESC LIMIT 1"
measure "/events/{trace id}" "SELECT * FROM webhook_events WHERE trace_id = '$trace_id' ORDER BY created_at DESC LIMIT 1"
measure "/events/{key}: its log rows" "SELECT * FROM webhook_logs WHERE webhook_event_id = '$event_id' ORDER BY timestamp, id"
measure "/events?limit=50 (first page)" "SELECT * FROM webhook_events ORDER BY received_at DESC, id DESC LIMIT 50"
measure "/events?limit=50&cursor= (halfway down)" "SELECT * FROM webhook_events WHERE (received_at, id) < ('$deep_at', '$deep_id') ORDER BY received_at DESC, id DESC LIMIT 50"
measure "/events?provider=livetip&status=ignored&limit=50" "SELECT * FROM webhook_events WHERE provider = 'livetip' AND status = 'ignored' ORDER BY received_at DESC, id DESC LIMIT 50"
search() { echo "SELECT * FROM webhook_events WHERE (provider_event_id IN ('$1') OR pluggy_item_id = '$1' OR pluggy_account_id = '$1') ORDER BY received_at DESC, id DESC LIMIT 50"; }
measure "/events?q=<paymentId>" "$(search "pid-$mid")"
measure "/events?q=<Pluggy itemId> (~10 of 50,000 pluggy rows)" "$(search item-42)"
measure "/events?q=<Pluggy accountId>" "$(search acct-42)"
measure "/events?provider=pluggy&limit=50 (5 % of rows)" "SELECT * FROM webhook_events WHERE provider = 'pluggy' ORDER BY received_at DESC, id DESC LIMIT 50"
measure "/events?event=item/deleted&limit=50 (0.1 %)" "SELECT * FROM webhook_events WHERE event = 'item/deleted' ORDER BY received_at DESC, id DESC LIMIT 50"
measure "/events?status=dead&limit=50 (0.01 %)" "SELECT * FROM webhook_events WHERE status = 'dead' ORDER BY received_at DESC, id DESC LIMIT 50"
measure "/webhook-logs?traceId=" "SELECT * FROM webhook_logs WHERE trace_id = '$trace_id' ORDER BY timestamp DESC, id DESC LIMIT 50"
measure "/webhook-logs?limit=50" "SELECT * FROM webhook_logs ORDER BY timestamp DESC, id DESC LIMIT 50"
