#!/usr/bin/env bash
# Debian's Prometheus scrapes a real `dipc --metrics` (make monitoring-check): starts a
# server on free loopback ports, runs a known workload (2 writes, 1 read), starts
# Prometheus with Examples/monitoring/prometheus.yml's job pointed at the server and a
# 1 s interval, and waits (60 s at most) until Prometheus's own query API returns
# dipc_requests_total{kind="write"} = 2 and up = 1. Exit 0 then, 1 otherwise.
# Cleans up only what it started. Usage: scripts/prometheus-scrape-check.sh [BIN_DIR]
set -euo pipefail
BIN=${1:-.build/debug}
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
[ -x "$PROMETHEUS" ] || { echo "FAILED: $PROMETHEUS is missing (Debian package prometheus; make monitoring-check installs it)"; exit 1; }

work=$(mktemp -d)
export DIPC_RUNTIME_DIR=$work/run
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); metrics_port=$(free_port); prometheus_port=$(free_port)
prometheus_pid=""
cleanup() {
  "$BIN/dipcrm" "$port" >/dev/null 2>&1 || true
  if [ -n "$prometheus_pid" ]; then kill "$prometheus_pid" 2>/dev/null || true; wait "$prometheus_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/dipc" --name "promcheck$$" --metrics "127.0.0.1:$metrics_port" 4 4 "$port" 1
printf 'w 0 5\nhellow 0 5\nhellor 0\nq\n' | nc -q1 127.0.0.1 "$port" >/dev/null

# The example configuration, with this server as its one target and a 1 s interval.
sed -e "s/127.0.0.1:9464/127.0.0.1:$metrics_port/" -e "s/scrape_interval: 15s/scrape_interval: 1s/" \
  Examples/monitoring/prometheus.yml > "$work/prometheus.yml"
"$PROMETHEUS" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!

query() {
  curl -s --max-time 2 --get "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys
try:
    result = json.load(sys.stdin)["data"]["result"]
    print(result[0]["value"][1] if result else "")
except Exception:
    print("")'
}
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
  writes=$(query 'dipc_requests_total{job="dipc",kind="write"}' || true)
  up=$(query 'up{job="dipc"}' || true)
  if [ "$writes" = "2" ] && [ "$up" = "1" ]; then
    echo "prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | cut -d' ' -f3) scraped dipc: up=1, dipc_requests_total{kind=\"write\"}=$writes, after $((SECONDS + 60 - deadline)) s"
    exit 0
  fi
  sleep 0.5
done
echo "FAILED: Prometheus did not report the server's 2 writes within 60 s (last: writes='$writes' up='$up'); its log:"
tail -20 "$work/prometheus.log"
exit 1
