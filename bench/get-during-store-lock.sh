#!/usr/bin/env bash
# GET latency of `tokendist serve` while its store is stuck, against the
# same server with a free store in the same run.  The design says a GET
# never waits for the store (docs/architecture.md); target: p99 < 5 ms.
#
#   bench/get-during-store-lock.sh [SECONDS]     (default 3 s lock)
#
# Run 1 (free): wrk, 50 connections, SECONDS + 2 s.
# Run 2 (SQLite locked): the same, while another process holds the store's
#   write lock for SECONDS and a POST waits for it.
# Run 3 (Redis hangs): a server on a private redis-server, which gets
#   SIGSTOP for SECONDS while POSTs wait for it.
# Prints req/s, p50/p99/max of each run and what the waiting POSTs got.
# Server on core 0, wrk on core 1.  A benchmark, not a test: not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=${1:-3}
DUR=$((LOCK + 2))

command -v wrk >/dev/null || { echo "bench: installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DTD_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target tokendist >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KEY=bench-$(openssl rand -hex 12)

record() { # token generated
  echo "{\"access_token\": \"$1\", \"expire_time\": \"\", \"expire_timestamp\": $(($2 + 7200)),
  \"valid_duration_seconds\": 7200, \"generated_time\": \"\", \"generated_timestamp\": $2,
  \"source\": \"财联社自动化系统\", \"usage\": \"用于客户端从飞书群获取财联社电报文件\", \"platform\": \"腾讯云函数\"}"
}
post() { # port token generated -> "STATUS SECONDS"
  curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' "127.0.0.1:$1/release/get-token" -d "$(record "$2" "$3")"
}
serve() { # port store
  taskset -c 0 build-bench/tokendist serve --listen "127.0.0.1:$1" --store "$2" --push-key "$KEY" \
    --conn-per-ip 0 2>>"$work/td.log" &
  pids+=($!)
  for _ in $(seq 50); do curl -fs "127.0.0.1:$1/healthz" >/dev/null && break; sleep 0.1; done
  post "$1" t-g1044ghEGNOJ5OSQF5OYATETPB "$(date +%s)" >/dev/null
}
wrk_run() { taskset -c 1 wrk -t1 -c50 -d"${DUR}s" --latency "http://127.0.0.1:$1/release/get-token"; }
field() { awk -v k="$1" '$1 == k { print $2 }'; }
maxlat() { awk '$1 == "Latency" { print $4; exit }'; }
row() { # name wrk-output note
  if grep -q "Non-2xx" <<<"$2"; then echo "bench: $1 answered non-2xx:" >&2; echo "$2" >&2; exit 1; fi
  printf '%-20s %12s %10s %10s %10s   %s\n' "$1" "$(field Requests/sec: <<<"$2")" "$(field 50% <<<"$2")" \
    "$(field 99% <<<"$2")" "$(maxlat <<<"$2")" "$3"
}

SQ_PORT=$(freeport)
serve "$SQ_PORT" "sqlite:$work/td.db"
printf '%-20s %12s %10s %10s %10s   %s\n' run "req/s" p50 p99 max "the POST meanwhile"
row "store free" "$(wrk_run "$SQ_PORT")" "-"

# Another process takes the write lock for LOCK seconds; a POST waits for it.
python3 - "$work/td.db" "$LOCK" >"$work/lock.out" 2>&1 <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
PY
lock_pid=$!
for _ in $(seq 50); do grep -q locked "$work/lock.out" 2>/dev/null && break; sleep 0.1; done
(sleep 0.5; post "$SQ_PORT" t-bench-after-lock "$(( $(date +%s) + 1 ))" >"$work/post.out") &
poster=$!
out=$(wrk_run "$SQ_PORT")
wait $lock_pid $poster
row "SQLite locked ${LOCK}s" "$out" "POST: HTTP $(cut -d' ' -f1 "$work/post.out") after $(cut -d' ' -f2 "$work/post.out") s"

# Redis: a private server that stops answering for LOCK seconds.
RD_PORT=$(freeport); TD2_PORT=$(freeport)
redis-server --bind 127.0.0.1 --port "$RD_PORT" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
rd_pid=$!; pids+=($rd_pid)
for _ in $(seq 50); do redis-cli -p "$RD_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
serve "$TD2_PORT" "redis://127.0.0.1:$RD_PORT/0"
row "Redis free" "$(wrk_run "$TD2_PORT")" "-"
(sleep 1; kill -STOP $rd_pid; sleep 0.5; post "$TD2_PORT" t-bench-redis "$(( $(date +%s) + 2 ))" >"$work/post2.out";
 sleep "$LOCK"; kill -CONT $rd_pid) &
stopper=$!
out=$(wrk_run "$TD2_PORT")
wait $stopper
row "Redis stopped ${LOCK}s" "$out" "POST: HTTP $(cut -d' ' -f1 "$work/post2.out") after $(cut -d' ' -f2 "$work/post2.out") s"
