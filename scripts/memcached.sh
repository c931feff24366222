#!/bin/sh
# Starts or stops a private memcached for trying Tessera's Memcached store by hand.
#
#   scripts/memcached.sh start     # 127.0.0.1:$MEMCACHED_PORT, 64 MB, TCP only, in the background
#   scripts/memcached.sh status
#   scripts/memcached.sh stop      # stops the process recorded in the PID file, and only that one
#
# Settings (environment): MEMCACHED_PORT (default 11311, away from the usual 11211),
# MEMCACHED_PID_FILE (default /tmp/tessera-memcached-$MEMCACHED_PORT.pid), MEMCACHED_BIN
# (default memcached). The automated tests do not use this script: they start their own server
# on a free port (test/support/memcached-server.ts).
set -eu

port="${MEMCACHED_PORT:-11311}"
pid_file="${MEMCACHED_PID_FILE:-/tmp/tessera-memcached-$port.pid}"
bin="${MEMCACHED_BIN:-memcached}"

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

case "${1:-}" in
  start)
    if running; then
      echo "memcached already running (PID $(cat "$pid_file"), port $port)"
      exit 0
    fi
    # memcached refuses to run as root unless told which user to run as.
    if [ "$(id -u)" = 0 ]; then user_flag="-u root"; else user_flag=""; fi
    # shellcheck disable=SC2086
    "$bin" -d -l 127.0.0.1 -p "$port" -U 0 -m 64 -P "$pid_file" $user_flag
    tries=0
    while [ ! -s "$pid_file" ] && [ "$tries" -lt 50 ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
    if ! running; then
      echo "memcached did not start" >&2
      exit 1
    fi
    echo "memcached running on 127.0.0.1:$port (PID $(cat "$pid_file"))"
    ;;
  stop)
    if ! running; then
      echo "memcached not running (no live PID in $pid_file)"
      rm -f "$pid_file"
      exit 0
    fi
    pid="$(cat "$pid_file")"
    kill "$pid"
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "memcached (PID $pid) did not stop" >&2
      exit 1
    fi
    rm -f "$pid_file"
    echo "memcached stopped"
    ;;
  status)
    if running; then
      echo "memcached running on 127.0.0.1:$port (PID $(cat "$pid_file"))"
    else
      echo "memcached not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
