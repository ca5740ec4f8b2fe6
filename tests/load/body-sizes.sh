#!/usr/bin/env bash
# Gateway throughput, latency and memory by body size: 300 B, 100 KiB and 1 MiB
# (the limit), at saturation (wrk) and at a fixed open-loop rate (k6), each beside two
# baselines at the same size and concurrency: the broker ceiling (a bare publisher with
# confirms, persistent, gateway-shaped messages) and a bare hyper server.
#   tests/load/body-sizes.sh         (SAT_SECONDS, RATE_SECONDS override the defaults)
source "$(dirname "$0")/lib.sh"
SAT_SECONDS=${SAT_SECONDS:-10}
RATE_SECONDS=${RATE_SECONDS:-15}
CONNECTIONS=${CONNECTIONS:-32}
GW=127.0.0.1:18100
ensure_tools
echo "== $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%FT%TZ)"
printf '%-8s | %-40s | %-44s | %s\n' size "saturation: req/s MiB/s p50 p99 (non-2xx)" "fixed rate: rate p50 p99 p99.9 (failed)" "gateway RSS peak"
# size, fixed rate (req/s)
ratios=()
# The largest body stays a little under the 1 MiB limit: k6 puts a longer unique id
# into every request.
for spec in "300 2000" "102400 200" "1048000 20"; do
  read -r size rate <<<"$spec"
  livetip_body "$size" BENCH_ID > "$OUT/body-$size.json"
  start_gateway "$GW"
  cat > "$OUT/body-$size.lua" <<LUA
local f = io.open("$PWD/$OUT/body-$size.json", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Livetip-Webhook-Secret-Token"] = "$TOKEN"
LUA
  wrk -t2 -c"$CONNECTIONS" -d"${SAT_SECONDS}s" --latency -s "$OUT/body-$size.lua" "http://$GW/webhook" > "$OUT/wrk-size-$size.txt"
  read -r s_rate s_p50 s_p99 s_bad _ < <(wrk_summary "$OUT/wrk-size-$size.txt")
  read -r k_p50 k_p99 k_p999 k_reqs k_failed k_dropped < <(k6_fixed_rate "http://$GW/webhook" "$rate" "$RATE_SECONDS" "$OUT/body-$size.json" "size-$size")
  peak=$(hwm_mib "$GATEWAY_PID")
  kill "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true
  # The baseline runs on an empty broker, as the gateway's run started.
  "$BIN/bench-broker-ceiling" --delete-topology "$PREFIX" >/dev/null
  ceiling=$("$BIN/bench-broker-ceiling" --in-flight "$CONNECTIONS" --seconds "$SAT_SECONDS" --size "$size" --topic --envelope-headers)
  c_rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$ceiling")
  "$BIN/bench-bare-hyper" 127.0.0.1:18101 > /dev/null 2>&1 &
  bare=$!; pids+=("$bare")
  wait_http "http://127.0.0.1:18101/"
  wrk -t2 -c"$CONNECTIONS" -d"${SAT_SECONDS}s" --latency -s "$OUT/body-$size.lua" "http://127.0.0.1:18101/webhook" > "$OUT/wrk-bare-$size.txt"
  kill "$bare"; wait "$bare" 2>/dev/null || true
  read -r b_rate _ <<<"$(wrk_summary "$OUT/wrk-bare-$size.txt")"
  ratios+=("$size: gateway $s_rate req/s = $(python3 -c "print(f'{$s_rate/$c_rate:.2f}')") of the broker ceiling ($c_rate msg/s), $(python3 -c "print(f'{$s_rate/$b_rate:.3f}')") of bare hyper ($b_rate req/s)")
  mibs=$(python3 -c "print(f'{$s_rate*$size/1048576:.1f}')")
  printf '%-8s | %6s req/s %6s MiB/s %6s %7s ms (%s) | %5s/s %6s %7s %7s ms (%s, dropped %s) | %s MiB\n' \
    "$size" "$s_rate" "$mibs" "$s_p50" "$s_p99" "$s_bad" "$rate" "$k_p50" "$k_p99" "$k_p999" "$k_failed" "$k_dropped" "$peak"
done
echo "baselines at the same size and $CONNECTIONS in flight:"
for r in "${ratios[@]}"; do echo "  $r"; done
