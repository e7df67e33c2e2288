#!/usr/bin/env bash
# Makes sure the services the tests need are reachable on loopback:
# Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) are expected to run already (they do on
# developer machines and in CI); memcached is installed from Debian's packages when missing and
# started on 127.0.0.1:11211 when nothing listens there. Debian's chromium (the dashboard's browser
# tests) is installed when missing, by scripts/chromium.sh.
# `bash scripts/services.sh stop` stops the memcached this script started (found by its pid file),
# and nothing else. `npm test` leaves it running: other test runs on the machine may use it.
set -euo pipefail

PIDFILE=/tmp/tasuki-memcached.pid

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

if [ "${1:-}" = "stop" ]; then
  if [ -s "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "memcached" ]; then
      kill "$pid" && echo "services: stopped memcached (pid $pid)" >&2
    fi
    rm -f "$PIDFILE"
  else
    echo "services: no memcached started by this script is running" >&2
  fi
  exit 0
fi

if ! port_open 11211; then
  if ! command -v memcached >/dev/null 2>&1; then
    echo "services: installing memcached (Debian package)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq memcached >/dev/null
  fi
  echo "services: starting memcached on 127.0.0.1:11211" >&2
  memcached -d -l 127.0.0.1 -p 11211 -m 128 -u "$(id -un)" -P "$PIDFILE"
  for _ in $(seq 1 50); do port_open 11211 && break; sleep 0.1; done
fi

# Chromium for the dashboard's browser tests.
bash "$(dirname "$0")/chromium.sh"

for svc in "redis:6379" "rabbitmq:5672" "memcached:11211"; do
  name=${svc%%:*}; port=${svc##*:}
  if ! port_open "$port"; then
    echo "services: $name is not reachable on 127.0.0.1:$port" >&2
    exit 1
  fi
done
