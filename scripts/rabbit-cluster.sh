#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the machine's own
# broker (which it leaves alone): nodes lfc1..lfc3@localhost on AMQP ports
# 5681..5683, one Erlang cookie (the rabbitmq user's), data under
# ${LFC_DIR:-/tmp/lakefleet-cluster}. Used by the cluster test
# (worker/tests/cluster.rs, LAKEFLEET_DISRUPTIVE_TESTS=1); usable by hand:
#
#   bash scripts/rabbit-cluster.sh start          # start and cluster the three nodes
#   bash scripts/rabbit-cluster.sh leader QUEUE   # the node that leads a quorum queue: lfc2@localhost
#   bash scripts/rabbit-cluster.sh stop-node lfc2@localhost
#   bash scripts/rabbit-cluster.sh stop           # stop every node and remove its data
set -euo pipefail
DIR="${LFC_DIR:-/tmp/lakefleet-cluster}"
NODES=(1 2 3)

node_env() {
  local i=$1 d="$DIR/$1"
  echo RABBITMQ_NODENAME="lfc$i@localhost" RABBITMQ_NODE_PORT=$((5680 + i)) RABBITMQ_DIST_PORT=$((25680 + i)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_ENABLED_PLUGINS_FILE="$d/plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq" RABBITMQ_PID_FILE="$d/pid"
}

ctl() { rabbitmqctl -q -n "$1" "${@:2}"; }

case "${1:-}" in
  start)
    for i in "${NODES[@]}"; do
      d="$DIR/$i"
      mkdir -p "$d"
      echo '[].' > "$d/plugins"
      echo "listeners.tcp.default = 127.0.0.1:$((5680 + i))" > "$d/rabbitmq.conf"
      if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$DIR"; fi
      (cd /tmp && env $(node_env "$i") rabbitmq-server -detached)
    done
    for i in "${NODES[@]}"; do
      for _ in $(seq 60); do ctl "lfc$i@localhost" await_startup >/dev/null 2>&1 && break; sleep 1; done
      ctl "lfc$i@localhost" await_startup
    done
    for i in 2 3; do
      ctl "lfc$i@localhost" stop_app
      ctl "lfc$i@localhost" join_cluster lfc1@localhost
      ctl "lfc$i@localhost" start_app
    done
    ctl lfc1@localhost cluster_status | grep -c 'lfc' >/dev/null
    echo "cluster: lfc1..lfc3@localhost on 127.0.0.1:5681..5683"
    ;;
  leader)
    # `list_queues name leader` of whichever node answers.
    for i in "${NODES[@]}"; do
      if out=$(ctl "lfc$i@localhost" list_queues name leader 2>/dev/null); then
        awk -v q="$2" '$1 == q { print $2 }' <<< "$out"
        exit 0
      fi
    done
    exit 1
    ;;
  stop-node)
    ctl "$2" stop
    ;;
  stop)
    for i in "${NODES[@]}"; do ctl "lfc$i@localhost" stop >/dev/null 2>&1 || true; done
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 start | leader QUEUE | stop-node NODE | stop" >&2
    exit 2
    ;;
esac
