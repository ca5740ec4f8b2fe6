#!/usr/bin/env bash
# Where the broker's CPU goes per message: the gateway's traffic against the bare
# publisher's with the same message shape (issue 16: "profile the broker too").
#
#   tests/load/broker-profile.sh                # 15 s of each, sampled for 5 s in the middle
#   SECONDS_EACH=20 SAMPLE_MS=8000 tests/load/broker-profile.sh
#   PIN=1 tests/load/broker-profile.sh   # a private broker alone on CPU 0, the load on CPU 1
#
# For each load it prints, per message, the broker's reductions (the Erlang VM's unit
# of work) by process kind — connection reader, channel, writer, the quorum queue's Ra
# server, the write-ahead log... — from recon's proc_window, and the schedulers'
# microstate accounting (time in the emulator, garbage collection, port and socket I/O,
# idle) from `rabbitmq-diagnostics runtime_thread_stats`. The gateway's run posts
# LiveTip events from wrk; the publisher's is `bench-broker-ceiling --topic
# --envelope-headers`, 64 in flight as wrk's 64 connections.
source "$(dirname "$0")/lib.sh"

SECONDS_EACH=${SECONDS_EACH:-15}
SAMPLE_MS=${SAMPLE_MS:-5000}
[ "$SAMPLE_MS" -ge 1000 ] && [ $((SAMPLE_MS / 1000 + 2)) -le "$SECONDS_EACH" ] ||
  { echo "SAMPLE_MS must be at least 1000 and leave a second either side within SECONDS_EACH" >&2; exit 1; }
GW_ADDR=127.0.0.1:18080
PIN=${PIN:-0}
ensure_tools
# With PIN=1 the broker has a core the gateway and wrk cannot take: whether the
# gateway's messages still cost it more time than the publisher's says whether the
# difference is the shared cores.
LOAD=()
if [ "$PIN" = 1 ]; then
  start_private_broker 5679 0
  LOAD=(taskset -c 1)
fi
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
on_node() { # command args... -> run against the private node when there is one
  local command=$1; shift
  if [ -n "$PRIVATE_NODE" ]; then "$command" -n "$PRIVATE_NODE" "$@"; else "$command" "$@"; fi
}
write_livetip_lua "$OUT/livetip.lua"

# Reductions per process kind over SAMPLE_MS, among the 400 busiest processes, with
# their sum first. A process's kind is its registered name, else the module it was
# started in (proc_lib's translation of its initial call). Per message, the report
# divides by the load's average rate over its whole run: the load is steady, and
# the broker's own counters lag by seconds.
ERL_SAMPLE='
Window = '"$SAMPLE_MS"',
Kind = fun(Pid, Attrs) ->
  case [N || N <- Attrs, is_atom(N)] of
    [Name | _] -> Name;
    [] -> case catch proc_lib:translate_initial_call(Pid) of
            {M, _, _} -> M;
            _ -> unknown
          end
  end
end,
Top = recon:proc_window(reductions, 400, Window),
Sums = lists:foldl(fun({Pid, R, Attrs}, Acc) ->
  K = Kind(Pid, Attrs),
  maps:update_with(K, fun(V) -> V + R end, R, Acc) end, #{}, Top),
[{total, lists:sum(maps:values(Sums))} | lists:sublist(lists:reverse(lists:keysort(2, maps:to_list(Sums))), 14)].'

sample() { # label -> reductions by kind and msacc of the next SAMPLE_MS, into $OUT
  on_node rabbitmqctl -q eval "$ERL_SAMPLE" > "$OUT/broker-profile-$1.reductions" &
  local red=$!
  on_node rabbitmq-diagnostics -q runtime_thread_stats --sample-interval "$((SAMPLE_MS / 1000))" > "$OUT/broker-profile-$1.msacc" 2>&1
  wait "$red"
}

report() { # label description messages/s -> per message, from what sample wrote (the load was steady)
  echo "$2: $3 messages/s"
  N=$(( $3 * SAMPLE_MS / 1000 )) python3 - "$OUT/broker-profile-$1.reductions" <<'PY'
import os, re, sys
n = max(int(os.environ['N']), 1)
text = open(sys.argv[1]).read()
pairs = re.findall(r"\{'?([^,{}']+?)'?,\s*(\d+)\}", text)
total = int(dict(pairs).get("total", 0))
# A quorum queue's Ra server is registered under its vhost and queue name.
kinds = {}
for kind, r in pairs:
    if kind != "total":
        kind = "quorum queues (Ra servers)" if kind.startswith("%2F_") else kind
        kinds[kind] = kinds.get(kind, 0) + int(r)
print(f"  reductions per message: {total / n:.0f} over the 400 busiest processes; the busiest kinds:")
for kind, r in sorted(kinds.items(), key=lambda kv: -kv[1]):
    print(f"    {kind:<40} {r / n:8.0f}")
PY
  echo "  schedulers' microstates over the same window (runtime_thread_stats):"
  sed 's/^/    /' "$OUT/broker-profile-$1.msacc"
}

echo "== machine: $(nproc) cores, $(uname -r); $(date -u +%FT%TZ); RabbitMQ $(on_node rabbitmqctl -q version 2>/dev/null); PIN=$PIN"
start_gateway "$GW_ADDR" AMQP_URL="$AMQP_URL"
[ "$PIN" = 0 ] || taskset -a -p -c 1 "$GATEWAY_PID" > /dev/null
"${LOAD[@]}" wrk -t2 -c64 -d"${SECONDS_EACH}s" -s "$OUT/livetip.lua" "http://$GW_ADDR" > "$OUT/broker-profile-wrk.txt" &
load=$!
sleep $(( (SECONDS_EACH - SAMPLE_MS / 1000) / 2 ))
sample gateway
wait "$load"
kill "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true
"$BIN/bench-broker-ceiling" --url "$AMQP_URL" --delete-topology "$PREFIX"
g_rate=$(awk '/^Requests\/sec/{printf "%d", $2}' "$OUT/broker-profile-wrk.txt")

"${LOAD[@]}" "$BIN/bench-broker-ceiling" --url "$AMQP_URL" --in-flight 64 --seconds "$SECONDS_EACH" --topic --envelope-headers > "$OUT/broker-profile-ceiling.txt" &
load=$!
sleep $(( (SECONDS_EACH - SAMPLE_MS / 1000) / 2 ))
sample publisher
wait "$load"
p_rate=$(sed -nE 's/^broker-ceiling.* rate=([0-9]+).*/\1/p' "$OUT/broker-profile-ceiling.txt")

[ -n "$g_rate" ] && [ -n "$p_rate" ] || { echo "a load run printed no rate: see $OUT/broker-profile-*.txt" >&2; exit 1; }
report gateway "gateway (wrk, 64 connections, LiveTip)" "$g_rate"
report publisher "publisher (bench-broker-ceiling --topic --envelope-headers, 64 in flight)" "$p_rate"
