#!/usr/bin/env bash
# Installs (when missing) and starts what lakefleet's tests and demo need on
# this machine: RabbitMQ, Redis, moto's S3 server, Prometheus and
# check-jsonschema. Idempotent: services already running are left alone.
# Installing needs root on Debian/Ubuntu (apt) and pip; elsewhere it says
# what to install.
set -euo pipefail

log() { echo "services: $*" >&2; }

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v rabbitmq-server >/dev/null || need_apt+=(rabbitmq-server)
command -v prometheus >/dev/null || need_apt+=(prometheus)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "missing: ${need_apt[*]}. This script installs them with apt-get as root on Debian or Ubuntu;"
    log "here, install them yourself (Redis, RabbitMQ 3.10+, Prometheus with promtool) and run it again."
    exit 1
  fi
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v moto_server >/dev/null || ! command -v check-jsonschema >/dev/null; then
  if ! command -v python3 >/dev/null; then
    log "missing: moto_server and check-jsonschema, and python3 to install them: install Python 3 and run it again"
    exit 1
  fi
  log "installing moto's S3 server and check-jsonschema (pip)"
  python3 -m pip install -q 'moto[server]' check-jsonschema || {
    log "pip could not install them; try: python3 -m pip install --user 'moto[server]' check-jsonschema"
    exit 1
  }
  command -v pyenv >/dev/null && pyenv rehash || true   # new console scripts under pyenv
  hash -r
fi

# The readers the tables are checked with: python deltalake (with pyarrow)
# and DuckDB with its Delta extension, installed from its PyPI wheel (DuckDB
# cannot download extensions here).
# pytz: DuckDB's Python API needs it to return TIMESTAMP WITH TIME ZONE
# values, which every table of instants holds.
if ! python3 -c 'import deltalake, duckdb, duckdb_extension_delta, pyarrow, polars, pytz' >/dev/null 2>&1; then
  log "installing python deltalake, duckdb, duckdb-extension-delta, pyarrow, polars and pytz (pip)"
  python3 -m pip install -q deltalake duckdb duckdb-extension-delta pyarrow polars pytz || {
    log "pip could not install them; try: python3 -m pip install --user deltalake duckdb duckdb-extension-delta pyarrow polars pytz"
    exit 1
  }
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis_dir=/var/lib/redis; [ -w "$redis_dir" ] || redis_dir="${TMPDIR:-/tmp}"
  redis_log=/var/log/redis/ci.log; [ -w /var/log/redis ] || redis_log="$redis_dir/lakefleet-redis.log"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir "$redis_dir" --logfile "$redis_log"
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  log "starting RabbitMQ"
  rabbitmq-server -detached
fi
for i in $(seq 1 90); do
  if rabbitmqctl -q await_startup >/dev/null 2>&1 && (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    break
  fi
  sleep 1
  if [ "$i" = 90 ]; then log "RabbitMQ did not start within 90s"; exit 1; fi
done
# Queue depths for the dashboard come from RabbitMQ's own Prometheus plugin.
rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
for i in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 1
  if [ "$i" = 30 ]; then log "Redis did not start within 30s"; exit 1; fi
done
for tool in moto_server check-jsonschema prometheus promtool; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after the install step"; exit 1; }
done
log "RabbitMQ 127.0.0.1:5672 (Prometheus plugin :15692), Redis 127.0.0.1:6379, moto_server, prometheus, promtool and check-jsonschema are ready"
