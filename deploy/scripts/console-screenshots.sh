#!/usr/bin/env bash
# The README's two console screenshots (the overview and one event), from a real run:
# the console's browser test against the real stack (the local RabbitMQ and
# PostgreSQL, headless Chromium), saving what the page shows on the way.
#
#   deploy/scripts/console-screenshots.sh [DIR]     # default docs/console
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-docs/console}
mkdir -p "$out"
CONSOLE_SCREENSHOTS_DIR="$(cd "$out" && pwd)" cargo nextest run -p hookwire-tests \
  --test integration -E 'test(=console::the_console_finds_an_event_and_follows_it_to_its_payment)'
ls -l "$out"/console-overview.png "$out"/console-event.png
