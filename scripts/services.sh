#!/usr/bin/env bash
# Installs (when missing) and starts what lakefleet's tests and demo need on
# this machine: RabbitMQ, Redis and moto's S3 server. Idempotent.
set -euo pipefail

log() { echo "services: $*" >&2; }

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v rabbitmq-server >/dev/null || need_apt+=(rabbitmq-server)
command -v prometheus >/dev/null || need_apt+=(prometheus)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v moto_server >/dev/null || ! command -v check-jsonschema >/dev/null; then
  log "installing moto's S3 server and check-jsonschema (pip)"
  python3 -m pip install -q 'moto[server]' check-jsonschema
  command -v pyenv >/dev/null && pyenv rehash || true   # new console scripts under pyenv
  hash -r
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
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
