#!/usr/bin/env bash
# The LiveTip specification's manual test: one payment's life, event by event.
#
#   CONTENT=HW-XXXXXXXX deploy/scripts/livetip-test.sh [URL] [TOKEN]
#
# URL defaults to http://localhost:8000/webhook. TOKEN defaults to LIVETIP_WEBHOOK_TOKEN
# (the first of its list), read from the environment, else from .env, else from
# .env.example, as run-local.sh reads them. Every event carries the same LiveTip
# paymentId (PAYMENT_ID, default one per run), so they follow one payment: the pending
# event binds our payment named in CONTENT (one of our ids, from POST /payments), the
# confirmed one completes it. EVENTS picks another life, e.g.
# EVENTS="payment_pending payment_cancelled"; AMOUNT (default 25.50) must match our
# payment's for it to complete.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${LIVETIP_WEBHOOK_TOKEN:-}" ]; then
  env_file="$root/.env"
  [ -f "$env_file" ] || env_file="$root/.env.example"
  LIVETIP_WEBHOOK_TOKEN=$(set -a; . "$env_file"; set +a; printf '%s' "${LIVETIP_WEBHOOK_TOKEN:-}")
fi
url=${1:-http://localhost:8000/webhook}
token=${2:-${LIVETIP_WEBHOOK_TOKEN%%,*}}
[ -n "$token" ] || { echo "no token: pass it, or set LIVETIP_WEBHOOK_TOKEN (environment or .env)" >&2; exit 2; }
content=${CONTENT:-}
payment_id=${PAYMENT_ID:-livetip_test_$(date +%s)}
amount=${AMOUNT:-25.50}
for event in ${EVENTS:-payment_pending payment_confirmed}; do
  paid=false; [ "$event" = payment_confirmed ] && paid=true
  echo "== $event (paymentId $payment_id)"
  curl -sS -X POST "$url" \
    -H "Content-Type: application/json" \
    -H "X-Livetip-Webhook-Secret-Token: $token" \
    -d "{\"event\":\"$event\",\"payment\":{\"sender\":\"teste_user\",\"amount\":$amount,\"currency\":\"BRL\",\"paymentId\":\"$payment_id\",\"paid\":$paid,\"content\":\"$content\"}}"
  echo
done
