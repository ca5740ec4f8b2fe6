#!/usr/bin/env bash
# Runs hookwire on this machine against the local RabbitMQ: builds both binaries,
# runs the worker, then the gateway in the foreground. Settings come from .env, or
# from .env.example when there is no .env (development secrets only).
set -euo pipefail
cd "$(dirname "$0")/../.."
env_file=.env
[ -f "$env_file" ] || env_file=.env.example
echo "settings from $env_file"
set -a; . "./$env_file"; set +a
cargo build --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
"$bin/worker" &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
"$bin/gateway"
