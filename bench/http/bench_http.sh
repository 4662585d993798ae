#!/bin/bash
# HTTP benchmark, side by side in one run: wrk against
#   arkend, classic REST handler        GET /ping      ("pong\n")
#   arkend, aco mountpoint              GET /aco/ping  ("pong\n", handler in a co-routine)
#   nginx (nginx-light), return 200     GET /ping      ("pong\n"), one worker, access log off
# at 10, 100 and 1000 connections. Each server runs on its own core (taskset) with one
# loop thread / one worker; wrk runs on another core. Prints requests/s, the server's CPU time
# per request (utime + stime from /proc, so it counts when the client is the bottleneck) and
# the ratios. Reports figures, never pass/fail.
#
# Each point is run REPEATS times, the three servers interleaved, and the median is printed
# (the machine is shared: single runs swing).
#
# usage: bench/http/bench_http.sh [BUILD_DIR] [SECONDS] [REPEATS]   (default build/release 3 3)
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build/release}
seconds=${2:-3}
repeats=${3:-3}
arkend=$build/apps/arkend/arkend
if [ ! -x "$arkend" ]; then
    echo "bench_http: $arkend is missing; build the release preset first:" >&2
    echo "  cmake --preset release && cmake --build --preset release -j2" >&2
    exit 1
fi
for tool in wrk nginx taskset; do
    command -v $tool >/dev/null || { echo "bench_http: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
cores=$(nproc)
server_core=0
client_core=$((cores > 1 ? 1 : 0))
ulimit -n 8192 2>/dev/null || ulimit -n 4096 2>/dev/null || true

work=$(mktemp -d)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

arkend_port=$(free_port)
nginx_port=$(free_port)

cat >"$work/arkend.conf" <<EOF
<arkend>
  <eventer><config><concurrency>1</concurrency></config></eventer>
  <listeners>
    <listener type="http_rest_api" address="127.0.0.1" port="$arkend_port" backlog="4096"/>
  </listeners>
</arkend>
EOF

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$nginx_port backlog=4096;
        location /ping { default_type text/plain; return 200 "pong\n"; }
    }
}
EOF

taskset -c $server_core "$arkend" -D -c "$work/arkend.conf" 2>"$work/arkend.log" &
arkend_pid=$!
pids="$pids $arkend_pid"
taskset -c $server_core nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
pids="$pids $nginx_pid"

wait_up() {
    for _ in $(seq 1 200); do
        if curl -s -o /dev/null "http://127.0.0.1:$1$2"; then return 0; fi
        sleep 0.05
    done
    echo "bench_http: nothing answers on port $1" >&2
    cat "$work"/*.log >&2
    exit 1
}
wait_up "$arkend_port" /ping
wait_up "$nginx_port" /ping
aco_path=/aco/ping
if [ "$(curl -s "http://127.0.0.1:$arkend_port$aco_path")" != "pong" ]; then
    echo "bench_http: arkend has no aco mountpoint $aco_path; measuring classic and nginx only"
    aco_path=""
fi

ticks_per_second=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# run NAME PID PORT PATH CONNECTIONS -> sets rps and cpu_us
run() {
    local pid=$2 port=$3 path=$4 connections=$5
    # A short warm-up so each server has its connections' buffers in place.
    taskset -c $client_core wrk -t1 -c "$connections" -d1 "http://127.0.0.1:$port$path" >/dev/null
    local before after output requests
    before=$(cpu_ticks "$pid")
    output=$(taskset -c $client_core wrk -t1 -c "$connections" -d"$seconds" \
        "http://127.0.0.1:$port$path")
    after=$(cpu_ticks "$pid")
    requests=$(echo "$output" | awk '/requests in/ {print $1}')
    rps=$(echo "$output" | awk '/Requests\/sec/ {print $2}')
    local errors
    errors=$(echo "$output" | awk '/Non-2xx|Socket errors/ {print}')
    if [ -n "$errors" ]; then echo "  ($1 at $connections: $errors)"; fi
    cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$requests" \
        'BEGIN { printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0) }')
}

median() { # prints the median of its arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "bench_http: ${seconds}s per run, median of $repeats; server core $server_core," \
    "wrk core $client_core (1 thread); arkend 1 loop thread, nginx 1 worker"
printf '%-6s | %-24s | %-24s | %-24s | %s\n' conns "arkend classic req/s cpu" \
    "arkend aco req/s cpu" "nginx req/s cpu" "ratios"
for connections in 10 100 1000; do
    c_rps=() c_cpu=() a_rps=() a_cpu=() n_rps=() n_cpu=()
    for _ in $(seq 1 "$repeats"); do
        run classic "$arkend_pid" "$arkend_port" /ping "$connections"
        c_rps+=("$rps") c_cpu+=("$cpu_us")
        if [ -n "$aco_path" ]; then
            run aco "$arkend_pid" "$arkend_port" "$aco_path" "$connections"
            a_rps+=("$rps") a_cpu+=("$cpu_us")
        else
            a_rps+=(0) a_cpu+=(0)
        fi
        run nginx "$nginx_pid" "$nginx_port" /ping "$connections"
        n_rps+=("$rps") n_cpu+=("$cpu_us")
    done
    classic_rps=$(median "${c_rps[@]}") classic_cpu=$(median "${c_cpu[@]}")
    aco_rps=$(median "${a_rps[@]}") aco_cpu=$(median "${a_cpu[@]}")
    nginx_rps=$(median "${n_rps[@]}") nginx_cpu=$(median "${n_cpu[@]}")
    ratios=$(awk -v cr="$classic_rps" -v cc="$classic_cpu" -v ar="$aco_rps" -v ac="$aco_cpu" \
        -v nr="$nginx_rps" -v nc="$nginx_cpu" 'BEGIN {
            r = sprintf("classic/nginx req/s %.2f, nginx/classic cpu %.2f", cr / nr, (cc > 0 ? nc / cc : 0));
            if (ar > 0)
                r = r sprintf("; aco/nginx req/s %.2f, nginx/aco cpu %.2f; aco/classic req/s %.2f, classic/aco cpu %.2f",
                              ar / nr, (ac > 0 ? nc / ac : 0), ar / cr, (ac > 0 ? cc / ac : 0));
            print r }')
    printf '%-6s | %12s %8sus | %12s %8sus | %12s %8sus | %s\n' "$connections" \
        "$classic_rps" "$classic_cpu" "$aco_rps" "$aco_cpu" "$nginx_rps" "$nginx_cpu" "$ratios"
done
echo "(cpu = server CPU time per request in microseconds; a cpu ratio > 1 means the first-named"
echo " server spends less CPU per request than the second)"
