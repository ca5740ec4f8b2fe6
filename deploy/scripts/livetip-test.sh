#!/usr/bin/env bash
# The LiveTip specification's manual test, for each of its four events.
#
#   deploy/scripts/livetip-test.sh [URL] [TOKEN]
#
# URL defaults to http://localhost:8000/webhook, TOKEN to $LIVETIP_WEBHOOK_TOKEN (first of
# the list). Each event gets its own paymentId; set CONTENT to put one of our payment ids
# (HW-XXXXXXXX, from POST /payments) in the message so the worker can match it.
set -euo pipefail
url=${1:-http://localhost:8000/webhook}
token=${2:-${LIVETIP_WEBHOOK_TOKEN%%,*}}
[ -n "$token" ] || { echo "no token: pass it or set LIVETIP_WEBHOOK_TOKEN" >&2; exit 2; }
content=${CONTENT:-}
stamp=$(date +%s)
for event in payment_pending payment_confirmed payment_failed payment_cancelled; do
  paid=false; [ "$event" = payment_confirmed ] && paid=true
  echo "== $event"
  curl -sS -X POST "$url" \
    -H "Content-Type: application/json" \
    -H "X-Livetip-Webhook-Secret-Token: $token" \
    -d "{\"event\":\"$event\",\"payment\":{\"sender\":\"teste_user\",\"amount\":25.50,\"paymentId\":\"test_${stamp}_$event\",\"paid\":$paid,\"content\":\"$content\"}}"
  echo
done
