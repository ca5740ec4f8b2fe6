#!/usr/bin/env bash
# Runs hookwire on this machine against the local RabbitMQ: builds both binaries, runs
# the worker and the gateway, and says where they answer once the gateway is ready.
# Settings come from .env, or from .env.example when there is no .env (development
# secrets only). Ctrl-C stops both.
#
#   deploy/scripts/run-local.sh                               # the product
#   deploy/scripts/run-local.sh gateway simulate pluggy item/updated --status ACTIVE
#   deploy/scripts/run-local.sh worker dlq list               # any subcommand, same settings
set -euo pipefail
cd "$(dirname "$0")/../.."
env_file=.env
[ -f "$env_file" ] || env_file=.env.example
echo "settings from $env_file" >&2
set -a; . "./$env_file"; set +a
if [ $# -gt 0 ]; then
  case "$1" in gateway|worker) ;; *) echo "usage: $0 [gateway|worker SUBCOMMAND...]" >&2; exit 2 ;; esac
  exec cargo run -q -p "$1" --bin "$1" -- "${@:2}"
fi
echo "building gateway and worker (the first build compiles for several minutes)..." >&2
cargo build --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
"$bin/worker" &
worker=$!
"$bin/gateway" &
gateway=$!
trap 'kill $worker $gateway 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
local_url() { local a=$1; a=${a/0.0.0.0/127.0.0.1}; echo "http://$a"; }
public=$(local_url "${GATEWAY_ADDR:-0.0.0.0:8000}")
admin=$(local_url "${ADMIN_ADDR:-127.0.0.1:8001}")
metrics=$(local_url "${WORKER_METRICS_ADDR:-127.0.0.1:9100}")
ready=no
for _ in $(seq 300); do
  curl -fs -o /dev/null "$public/readyz" && { ready=yes; break; }
  kill -0 "$gateway" 2>/dev/null || { echo "the gateway stopped; see its log above" >&2; exit 1; }
  sleep 0.2
done
if [ "$ready" = no ]; then
  echo "the gateway is not ready after 60 s (is RabbitMQ running at AMQP_URL?); still trying" >&2
  state="is starting (not ready yet)"
else
  state="is up"
fi
cat >&2 <<MSG

hookwire $state:
  providers' webhooks  $public/api/banking/pluggy/webhook/  and  $public/webhook
  admin API            $admin/webhook-logs, /webhook-stats, /payments, /events, /dead-letters
  worker metrics       $metrics/metrics  (gateway: $admin/metrics)
Ctrl-C stops both.

MSG
wait "$gateway"
