#!/usr/bin/env bash
# Redis-side figures of docs/scaling.md: Redis CPU per command for what Herald sends, read from
# /proc/<pid>/stat (utime+stime) around a redis-benchmark run. Needs a built edge (it loads the
# function library): HERALD=build/release/herald docs/measure-redis.sh [single|bus|replica|all]
#   single  - one Redis, then one cluster node serving every slot (Redis on CPU 1, client on 0)
#   bus     - classic PUBLISH vs SPUBLISH in a 3-primary cluster (CPU of all three nodes)
#   replica - herald_publish on a master without and with one replica
# Loopback, 100-byte payloads, 50 client connections, 100000 commands per figure.
set -u
what=${1:-all}
single() {
HERALD=${HERALD:-build/release/herald}
D=$(mktemp -d)
P=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(min(s.getsockname()[1],50000))')
PAY=$(printf 'x%.0s' $(seq 1 100))
N=${N:-100000}
cpu() { awk '{print $14+$15}' /proc/$RP/stat; }   # redis-server utime+stime, clock ticks
bench() { # prints: Redis CPU microseconds per command, and requests/s as the client saw them
  local c0 c1 out
  c0=$(cpu)
  out=$(taskset -c 0 redis-benchmark -p "$1" -c 50 -n "$N" -P "$2" -q "${@:3}" 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1)
  c1=$(cpu)
  awk -v a="$c0" -v b="$c1" -v n="$N" -v hz="$(getconf CLK_TCK)" -v o="${out##*: }" \
    'BEGIN { printf "%.2f us Redis CPU/command (%.0f commands per Redis core-second); client saw %s\n", (b-a)/hz*1e6/n, n/((b-a)/hz), o }'
}
subs() { # $1 port, $2 count, $3 command, $4 channel
  for i in $(seq 1 "$2"); do redis-cli -p "$1" "$3" "$4" >/dev/null & echo $! >> "$D/subs"; done; sleep 1; }
unsubs() { [ -f "$D/subs" ] && kill $(cat "$D/subs") 2>/dev/null; rm -f "$D/subs"; sleep 0.5; }

echo "== single Redis (one core) =="
taskset -c 1 redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no --dir "$D" --daemonize no --logfile "$D/r.log" & RP=$!
sleep 0.5
"$HERALD" --listen 127.0.0.1:$((P+2)) --redis "redis://127.0.0.1:$P" --ingest off >/dev/null 2>&1 & HP=$!
sleep 1; kill $HP; wait $HP 2>/dev/null
for pl in 1 16; do
  echo "PUBLISH, 0 subscribers, -P $pl:  $(bench $P $pl PUBLISH 'herald:{b}:live' $PAY)"
  echo "FCALL herald_publish, 0 subscribers, -P $pl:  $(bench $P $pl FCALL herald_publish 1 b $PAY)"
done
subs $P 10 SUBSCRIBE 'herald:{b}:live'
for pl in 1 16; do
  echo "PUBLISH, 10 subscribers, -P $pl:  $(bench $P $pl PUBLISH 'herald:{b}:live' $PAY)"
  echo "FCALL herald_publish, 10 subscribers, -P $pl:  $(bench $P $pl FCALL herald_publish 1 b $PAY)"
done
unsubs
kill $RP; wait $RP 2>/dev/null

P=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(min(s.getsockname()[1],50000))')
echo "== one cluster node serving every slot (one core) =="
taskset -c 1 redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no --dir "$D" --daemonize no --logfile "$D/c.log" --cluster-enabled yes --cluster-port $((P+1)) --cluster-config-file "$D/n.conf" & RP=$!
sleep 0.5
redis-cli -p $P CLUSTER ADDSLOTSRANGE 0 16383 >/dev/null
for i in $(seq 50); do redis-cli -p $P CLUSTER INFO 2>/dev/null | grep -q cluster_state:ok && break; sleep 0.2; done
"$HERALD" --listen 127.0.0.1:$((P+2)) --redis "cluster://127.0.0.1:$P" --ingest off >/dev/null 2>&1 & HP=$!
sleep 1.5; kill $HP; wait $HP 2>/dev/null
for pl in 1 16; do
  echo "SPUBLISH, 0 subscribers, -P $pl:  $(bench $P $pl SPUBLISH 'herald:{b}:live' $PAY)"
  echo "FCALL herald_publish (2 keys, SPUBLISH), 0 subscribers, -P $pl:  $(bench $P $pl FCALL herald_publish 2 'herald:{b}:log' 'herald:{b}:epoch' $PAY)"
done
subs $P 10 SSUBSCRIBE 'herald:{b}:live'
for pl in 1 16; do
  echo "SPUBLISH, 10 subscribers, -P $pl:  $(bench $P $pl SPUBLISH 'herald:{b}:live' $PAY)"
  echo "FCALL herald_publish (2 keys, SPUBLISH), 10 subscribers, -P $pl:  $(bench $P $pl FCALL herald_publish 2 'herald:{b}:log' 'herald:{b}:epoch' $PAY)"
done
unsubs
kill $RP; wait $RP 2>/dev/null
rm -rf "$D"
}

bus() {
D=$(mktemp -d); PAY=$(printf 'x%.0s' $(seq 1 100)); N=100000
base=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(min(s.getsockname()[1],40000))')
pids=(); ports=()
for i in 0 1 2; do
  p=$((base+i*2)); mkdir -p $D/$i
  redis-server --port $p --cluster-port $((p+1)) --bind 127.0.0.1 --save '' --appendonly no --dir $D/$i --daemonize no --logfile $D/$i/log --cluster-enabled yes --cluster-config-file $D/$i/n.conf --cluster-node-timeout 5000 & pids+=($!); ports+=($p)
done
sleep 1
redis-cli --cluster create 127.0.0.1:${ports[0]} 127.0.0.1:${ports[1]} 127.0.0.1:${ports[2]} --cluster-yes >/dev/null 2>&1
for i in $(seq 50); do redis-cli -p ${ports[0]} cluster info | grep -q cluster_state:ok && break; sleep 0.2; done
# a channel whose slot node 0 serves
ch=$(for t in $(seq 1 500); do c="herald:{t$t}:live"; s=$(redis-cli -p ${ports[0]} cluster keyslot "$c"); o=$(redis-cli -p ${ports[0]} cluster slots | head -0; redis-cli -p ${ports[0]} cluster nodes | grep myself | awk '{print $9}'); echo "$c $s"; done | awk -v r="$(redis-cli -p ${ports[0]} cluster nodes | grep myself | awk '{print $9}')" 'BEGIN{split(r,a,"-")} $2>=a[1] && $2<=a[2] {print $1; exit}')
cpu() { local t=0; for p in "${pids[@]}"; do t=$((t+$(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
run() { local c0=$(cpu); redis-benchmark -p ${ports[0]} -c 50 -n $N -P 16 -q "$@" >/dev/null 2>&1; local c1=$(cpu);
  awk -v a=$c0 -v b=$c1 -v n=$N -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.2f us Redis CPU (all 3 nodes) per command\n",(b-a)/hz*1e6/n}'; }
echo "channel $ch on :${ports[0]}"
echo "PUBLISH  (classic, cluster-wide), no subscribers: $(run PUBLISH "$ch" $PAY)"
echo "SPUBLISH (sharded), no subscribers:               $(run SPUBLISH "$ch" $PAY)"
kill "${pids[@]}"; wait 2>/dev/null; rm -rf $D
}

replica() {
H=${HERALD:-build/release/herald}
D=$(mktemp -d); PAY=$(printf 'x%.0s' $(seq 1 100)); N=100000
p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(min(s.getsockname()[1],40000))')
taskset -c 1 redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --dir $D --daemonize no --logfile $D/m.log & M=$!
sleep 0.5
$H --listen 127.0.0.1:$((p+2)) --redis redis://127.0.0.1:$p --ingest off >/dev/null 2>&1 & HP=$!; sleep 1.5; kill $HP; wait $HP 2>/dev/null
cpu() { awk '{print $14+$15}' /proc/$M/stat; }
run() { local c0=$(cpu); taskset -c 0 redis-benchmark -p $p -c 50 -n $N -P 16 -q FCALL herald_publish 1 b $PAY >/dev/null 2>&1; local c1=$(cpu);
  awk -v a=$c0 -v b=$c1 -v n=$N -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.2f us master CPU per FCALL herald_publish\n",(b-a)/hz*1e6/n}'; }
echo "no replica:  $(run)"
mkdir $D/r; redis-server --port $((p+1)) --bind 127.0.0.1 --save '' --appendonly no --dir $D/r --daemonize no --logfile $D/r.log --replicaof 127.0.0.1 $p & R=$!
for i in $(seq 50); do redis-cli -p $((p+1)) info replication | grep -q master_link_status:up && break; sleep 0.2; done
echo "one replica: $(run)"
kill $M $R; wait 2>/dev/null; rm -rf $D
}

case "$what" in
single) single ;;
bus) bus ;;
replica) replica ;;
all) single; bus; replica ;;
*) echo "usage: $0 [single|bus|replica|all]" >&2; exit 2 ;;
esac
