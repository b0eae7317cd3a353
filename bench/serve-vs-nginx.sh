#!/usr/bin/env bash
# GET throughput of `tokendist serve` against nginx serving the same bytes
# from memory, in the same run on the same machine: nginx (1 worker,
# access_log off, `return 200 '<record>'`) vs tokendist (SQLite store, the
# record stored once).  Server on core 0, wrk on core 1.
#
#   bench/serve-vs-nginx.sh [SECONDS]        (default 10 s per run)
#
# Prints req/s, p50/p99 latency and peak RSS of both, and the ratio (wrk
# prints no p99 for a pipelined run against some servers: "0.00us"); then
# the same 50-connection run while 1,000 idle connections and 100 slowloris
# clients (headers trickled a byte at a time) hold on to each server.
# A benchmark, not a test: it does not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}

command -v wrk >/dev/null || { echo "bench: installing wrk and nginx" >&2; apt-get install -y -qq wrk nginx-light >/dev/null; }
command -v nginx >/dev/null || apt-get install -y -qq nginx-light >/dev/null
# An optimised build of its own, whatever build/ holds.
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DTD_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target tokendist >/dev/null

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TD_PORT=$(freeport); NG_PORT=$(freeport)
KEY=bench-$(openssl rand -hex 12)

# tokendist, with one record stored.
taskset -c 0 build-bench/tokendist serve --listen 127.0.0.1:$TD_PORT --store sqlite:$work/td.db \
  --push-key "$KEY" --conn-per-ip 0 --conn-limit 10000 2>"$work/td.log" &
pids+=($!); TD_PID=$!
for _ in $(seq 50); do curl -fs "127.0.0.1:$TD_PORT/healthz" >/dev/null && break; sleep 0.1; done
now=$(date +%s)
curl -fs -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  "127.0.0.1:$TD_PORT/release/get-token" -d "{\"access_token\": \"t-g1044ghEGNOJ5OSQF5OYATETPB\",
  \"expire_time\": \"\", \"expire_timestamp\": $((now + 7200)), \"valid_duration_seconds\": 7200,
  \"generated_time\": \"\", \"generated_timestamp\": $now, \"source\": \"财联社自动化系统\",
  \"usage\": \"用于客户端从飞书群获取财联社电报文件\", \"platform\": \"腾讯云函数\"}" >/dev/null
BODY=$(curl -fs "127.0.0.1:$TD_PORT/release/get-token")

# nginx, the same bytes and headers from memory.
mkdir -p "$work/ng"
cat >"$work/ng/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log;
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path $work/ng; proxy_temp_path $work/ng; fastcgi_temp_path $work/ng;
  uwsgi_temp_path $work/ng; scgi_temp_path $work/ng;
  server {
    listen 127.0.0.1:$NG_PORT;
    location / {
      default_type "application/json; charset=utf-8";
      add_header Access-Control-Allow-Origin * always;
      add_header Cache-Control no-store always;
      return 200 '$BODY';
    }
  }
}
NGINX
taskset -c 0 nginx -c "$work/ng/nginx.conf" -p "$work/ng" &
pids+=($!); NG_MASTER=$!
for _ in $(seq 50); do curl -fs "127.0.0.1:$NG_PORT/release/get-token" >/dev/null && break; sleep 0.1; done
NG_PID=$(pgrep -P "$NG_MASTER" | head -1)
[ "$(curl -fs 127.0.0.1:$NG_PORT/release/get-token)" = "$BODY" ] || { echo "bench: nginx body differs" >&2; exit 1; }

cat >"$work/pipeline.lua" <<'LUA'
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/release/get-token") end
  req = table.concat(r)
end
request = function() return req end
LUA

# wrk's "Latency Distribution" 50% and 99% lines, and Requests/sec.
run() { # port conns [script]
  local extra=()
  [ -n "${3:-}" ] && extra=(-s "$3")
  taskset -c 1 wrk -t1 -c"$2" -d"${DUR}s" --latency "${extra[@]}" "http://127.0.0.1:$1/release/get-token"
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }
# A run whose answers were not all 200 measured the wrong thing: stop.
all_ok() { if grep -q "Non-2xx" <<<"$2"; then echo "bench: $1 answered non-2xx:" >&2; echo "$2" >&2; exit 1; fi; }
rss() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }

printf '%-22s %14s %10s %10s %14s %10s %10s %8s\n' run "tokendist r/s" p50 p99 "nginx r/s" p50 p99 ratio
for spec in "50 conns:50:" "200 conns:200:" "pipelined 16 x 50:50:$work/pipeline.lua"; do
  IFS=: read -r name conns script <<<"$spec"
  td=$(run "$TD_PORT" "$conns" "$script"); ng=$(run "$NG_PORT" "$conns" "$script")
  all_ok tokendist "$td"; all_ok nginx "$ng"
  td_rps=$(echo "$td" | field Requests/sec:); ng_rps=$(echo "$ng" | field Requests/sec:)
  printf '%-22s %14s %10s %10s %14s %10s %10s %8.2f\n' "$name" "$td_rps" \
    "$(echo "$td" | field 50%)" "$(echo "$td" | field 99%)" "$ng_rps" \
    "$(echo "$ng" | field 50%)" "$(echo "$ng" | field 99%)" "$(echo "$td_rps / $ng_rps" | bc -l)"
done
# RSS counts the shared libraries' pages too (most of it for both); the
# private memory (anonymous + private file pages) is what each adds.
priv() { awk '/^Private_(Clean|Dirty)/ { s += $2 } END { print s }' "/proc/$1/smaps_rollup"; }
echo "peak RSS: tokendist $(rss $TD_PID) kB, nginx worker $(rss $NG_PID) kB (master $(rss $NG_MASTER) kB)"
echo "private now: tokendist $(priv $TD_PID) kB, nginx worker $(priv $NG_PID) kB"

# Abuse: idle and slowloris connections from other loopback addresses.
cat >"$work/abuse.py" <<'PY'
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
conns, slow = [], []
for i in range(1000):
    s = socket.socket(); s.bind(("127.0.0.3", 0)); s.connect(("127.0.0.1", port)); conns.append(s)
for i in range(100):
    s = socket.socket(); s.bind(("127.0.0.4", 0)); s.connect(("127.0.0.1", port))
    s.sendall(b"GET /release/get-token HTTP/1.1\r\nHost: localhost\r\n"); slow.append(s)
print("ready", flush=True)
end = time.time() + secs
while time.time() < end:
    for s in slow:
        try: s.sendall(b"X")
        except OSError: pass
    time.sleep(0.5)
PY
ulimit -n "$(ulimit -Hn)"   # 1,100 sockets in one process
abuse_run() { # port
  python3 "$work/abuse.py" "$1" $((DUR + 5)) >"$work/abuse.out" 2>&1 &
  local ap=$!
  for _ in $(seq 100); do grep -q ready "$work/abuse.out" 2>/dev/null && break; sleep 0.1; done
  run "$1" 50
  kill $ap 2>/dev/null; wait $ap 2>/dev/null || true
}
td=$(abuse_run "$TD_PORT"); ng=$(abuse_run "$NG_PORT")
all_ok tokendist "$td"; all_ok nginx "$ng"
printf '%-22s %14s %10s %10s %14s %10s %10s %8.2f\n' "50 + 1000 idle + 100 slow" \
  "$(echo "$td" | field Requests/sec:)" "$(echo "$td" | field 50%)" "$(echo "$td" | field 99%)" \
  "$(echo "$ng" | field Requests/sec:)" "$(echo "$ng" | field 50%)" "$(echo "$ng" | field 99%)" \
  "$(echo "$(echo "$td" | field Requests/sec:) / $(echo "$ng" | field Requests/sec:)" | bc -l)"
