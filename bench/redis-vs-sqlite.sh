#!/usr/bin/env bash
# GET throughput of `tokendist serve` with the Redis store against the
# SQLite store, in the same run on the same machine, serving the same
# record: GETs come from memory either way, so the two should be equal.
# Servers on core 0, wrk on core 1, redis-server unpinned (it is idle
# during the GETs).  The runs alternate (SQLite, Redis, SQLite, Redis)
# so that a drift of the machine shows up as a spread, not as a ratio.
#
#   bench/redis-vs-sqlite.sh [SECONDS] [CONNECTIONS]   (default 10 s, 50)
#
# A benchmark, not a test: it does not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-50}

command -v wrk >/dev/null || { echo "bench: installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || apt-get install -y -qq redis-server >/dev/null
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DTD_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target tokendist >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RD_PORT=$(freeport); SQ=$(freeport); RS=$(freeport)
KEY=bench-$(openssl rand -hex 12)

redis-server --bind 127.0.0.1 --port "$RD_PORT" --dir "$work" --save '' --appendonly yes \
  --appendfsync always --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$RD_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

serve() { # port store
  taskset -c 0 build-bench/tokendist serve --listen "127.0.0.1:$1" --store "$2" --push-key "$KEY" \
    --conn-per-ip 0 --conn-limit 10000 2>"$work/serve-$1.log" &
  pids+=($!)
  for _ in $(seq 50); do curl -fs "127.0.0.1:$1/healthz" >/dev/null && break; sleep 0.1; done
}
serve "$SQ" "sqlite:$work/td.db"
serve "$RS" "redis://127.0.0.1:$RD_PORT/0"

now=$(date +%s)
record="{\"access_token\": \"t-g1044ghEGNOJ5OSQF5OYATETPB\", \"expire_time\": \"\",
  \"expire_timestamp\": $((now + 7200)), \"valid_duration_seconds\": 7200, \"generated_time\": \"\",
  \"generated_timestamp\": $now, \"source\": \"财联社自动化系统\",
  \"usage\": \"用于客户端从飞书群获取财联社电报文件\", \"platform\": \"腾讯云函数\"}"
for port in "$SQ" "$RS"; do
  curl -fs -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    "127.0.0.1:$port/release/get-token" -d "$record" >/dev/null
done
[ "$(curl -fs "127.0.0.1:$SQ/release/get-token")" = "$(curl -fs "127.0.0.1:$RS/release/get-token")" ] ||
  { echo "bench: the two servers answer different bodies" >&2; exit 1; }

rps() { # port
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$1/release/get-token" |
    awk '$1 == "Requests/sec:" { print $2 }'
}
printf '%-8s %14s %14s %8s\n' round "sqlite r/s" "redis r/s" ratio
sum_s=0; sum_r=0
for round in 1 2; do
  s=$(rps "$SQ"); r=$(rps "$RS")
  printf '%-8s %14s %14s %8.3f\n' "$round" "$s" "$r" "$(echo "$r / $s" | bc -l)"
  sum_s=$(echo "$sum_s + $s" | bc -l); sum_r=$(echo "$sum_r + $r" | bc -l)
done
printf '%-8s %14.0f %14.0f %8.3f   (redis / sqlite, %s conns, %s s per run)\n' total "$sum_s" "$sum_r" \
  "$(echo "$sum_r / $sum_s" | bc -l)" "$CONNS" "$DUR"
