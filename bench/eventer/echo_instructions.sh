#!/bin/sh
# User-space instructions per echoed round trip of each echo server, counted with callgrind
# (deterministic, unlike the timings of bench_echo on a shared machine). For each server and
# connection count it runs the server alone under callgrind twice, with a small Python
# client doing R1 then R2 round trips per connection, and prints
# (instructions(R2) - instructions(R1)) / ((R2 - R1) * connections): start-up cancels out.
# Kernel work is not counted: every server makes the same system calls per round trip.
#   bench/eventer/echo_instructions.sh [BENCH_ECHO] [SERVERS] [CONNS]
# Needs valgrind and python3. Uses 127.0.0.1 ports 19102 and 19103.
set -eu
bench=${1:-build/release/bench/eventer/bench_echo}
server_list=${2:-"arkenstone libev epoll"}
conns_list=${3:-"1 10 100 1000"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/client.py" <<'PY'
import selectors, socket, sys
port, conns, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
message = b"x" * 64
selector = selectors.DefaultSelector()
left, pending = {}, {}
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    selector.register(s, selectors.EVENT_READ)
    left[s], pending[s] = rounds, 64
    s.send(message)
active = conns
while active:
    for key, _ in selector.select(timeout=30):
        s = key.fileobj
        data = s.recv(4096)
        if not data:
            sys.exit("server closed a connection")
        pending[s] -= len(data)
        if pending[s] <= 0:
            left[s] -= 1
            if left[s]:
                pending[s] = 64
                s.send(message)
            else:
                selector.unregister(s)
                active -= 1
PY

# Prints the instructions callgrind counted for one server process driven R round trips.
count() {
    server=$1 conns=$2 rounds=$3 port=$4
    out="$work/$server.$conns.$rounds.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" serve "$server" "$port" \
        >/dev/null 2>"$work/valgrind.log" &
    pid=$!
    tries=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" \
        2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { echo "server $server did not start" >&2; kill $pid; exit 1; }
        sleep 0.1
    done
    python3 "$work/client.py" "$port" "$conns" "$rounds"
    sleep 0.3
    kill -TERM $pid
    wait $pid 2>/dev/null || true
    callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

printf '%-12s %6s %22s\n' server conns "instructions/round trip"
for server in $server_list; do
    for conns in $conns_list; do
        small=$(count "$server" "$conns" 100 19102)
        large=$(count "$server" "$conns" 300 19103)
        printf '%-12s %6s %22s\n' "$server" "$conns" $(((large - small) / (200 * conns)))
    done
done
