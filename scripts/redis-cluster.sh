#!/bin/sh
# A throwaway 3-master Redis Cluster on loopback, for trying Tessera's RedisStore by hand.
#
#   scripts/redis-cluster.sh start   # starts it, prints the rootNodes to give createCluster
#   scripts/redis-cluster.sh stop    # stops the servers listed in the PID file, removes the data
#
# Environment: REDIS_CLUSTER_DIR (default /tmp/tessera-redis-cluster), REDIS_CLUSTER_PORTS
# (default "7001 7002 7003"; each port + 10000 is its cluster bus port), REDIS_SERVER_BIN,
# REDIS_CLI_BIN. Servers bind 127.0.0.1 and keep nothing on disk (--save "" --appendonly no).
# The test suite does the same from Node (test/support/redis-server.ts) on random free ports.
set -eu

DIR=${REDIS_CLUSTER_DIR:-/tmp/tessera-redis-cluster}
PORTS=${REDIS_CLUSTER_PORTS:-"7001 7002 7003"}
SERVER=${REDIS_SERVER_BIN:-/usr/bin/redis-server}
CLI=${REDIS_CLI_BIN:-/usr/bin/redis-cli}
PIDS="$DIR/pids"

start() {
  if [ -s "$PIDS" ]; then
    echo "already started (see $PIDS); run '$0 stop' first" >&2
    exit 1
  fi
  mkdir -p "$DIR"
  : >"$PIDS"
  nodes=""
  for port in $PORTS; do
    mkdir -p "$DIR/$port"
    "$SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$DIR/$port" --logfile "$DIR/$port/redis.log" --daemonize no \
      --cluster-enabled yes --cluster-config-file "$DIR/$port/nodes.conf" \
      --cluster-node-timeout 5000 &
    echo "$!" >>"$PIDS"
    nodes="$nodes 127.0.0.1:$port"
  done
  for port in $PORTS; do
    tries=0
    until [ "$("$CLI" -p "$port" PING 2>/dev/null)" = "PONG" ]; do
      tries=$((tries + 1))
      if [ "$tries" -gt 100 ]; then
        echo "redis-server on port $port did not start; see $DIR/$port/redis.log" >&2
        stop
        exit 1
      fi
      sleep 0.1
    done
  done
  # shellcheck disable=SC2086 # one argument per node
  "$CLI" --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$DIR/create.log"
  for port in $PORTS; do
    tries=0
    until "$CLI" -p "$port" CLUSTER INFO | grep -q 'cluster_state:ok'; do
      tries=$((tries + 1))
      if [ "$tries" -gt 200 ]; then
        echo "the cluster did not become ready; see $DIR/create.log" >&2
        stop
        exit 1
      fi
      sleep 0.1
    done
  done
  echo "cluster ready; PIDs in $PIDS"
  printf 'rootNodes:'
  for port in $PORTS; do printf " redis://127.0.0.1:%s" "$port"; done
  echo
}

stop() {
  if [ -f "$PIDS" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done <"$PIDS"
    # Give each server a moment to exit, then make sure it has.
    sleep 0.5
    while read -r pid; do
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done <"$PIDS"
  fi
  for port in $PORTS; do rm -rf "${DIR:?}/$port"; done
  rm -f "$PIDS" "$DIR/create.log"
  rmdir "$DIR" 2>/dev/null || true
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
