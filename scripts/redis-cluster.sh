#!/usr/bin/env bash
# A private local Redis Cluster (3 masters + 3 replicas) on loopback, for trying tasuki by hand.
#   bash scripts/redis-cluster.sh start [DIR] [FIRST_PORT]   # default DIR /tmp/tasuki-cluster, ports 27001..27006
#   bash scripts/redis-cluster.sh stop  [DIR]                # SIGKILLs the nodes by their PID files, removes DIR
# Tests start their own cluster from test/helpers/redis-cluster.ts (same settings, free ports).
set -euo pipefail
cmd=${1:-}
dir=${2:-/tmp/tasuki-cluster}
first=${3:-27001}
case "$cmd" in
  start)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "redis-server/redis-cli not found" >&2; exit 1; }
    mkdir -p "$dir"
    addrs=()
    for i in 0 1 2 3 4 5; do
      port=$((first + i))
      mkdir -p "$dir/$port"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
        --cluster-node-timeout 2000 --save '' --appendonly yes --dir "$dir/$port" \
        --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
      addrs+=("127.0.0.1:$port")
    done
    for i in 0 1 2 3 4 5; do
      until redis-cli -p $((first + i)) ping >/dev/null 2>&1; do sleep 0.1; done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    until [ "$(redis-cli -p "$first" cluster info | tr -d '\r' | grep cluster_state)" = "cluster_state:ok" ]; do sleep 0.2; done
    echo "cluster up: ${addrs[*]}"
    ;;
  stop)
    for pidfile in "$dir"/*/redis.pid; do
      [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$dir"
    echo "cluster stopped"
    ;;
  *)
    echo "usage: $0 start|stop [DIR] [FIRST_PORT]" >&2
    exit 2
    ;;
esac
