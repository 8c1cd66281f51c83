#!/usr/bin/env bash
# shellcheck shell=bash
#
# services.sh -- the stack library shared by scripts/dev, test, chaos, fuzz
# and bench; the one file they source.
#
# Why it exists: the ticket system needs MariaDB, RabbitMQ, etcd and Redis.
# CI machines and dev boxes have no systemd (and Debian's policy-rc.d keeps
# package postinst scripts from starting anything), so we run private copies
# of the four servers on loopback. A "stack" is one state directory plus four
# ports; several stacks (dev + test + chaos) can run side by side. Each stack
# has its own supervisord (Debian's `supervisor`, config in
# scripts/supervisor/supervisord.conf), which starts, stops and logs the
# server and app processes; these files prepare what the servers need
# (config files, data dirs, users and grants) and wait until each answers.
# Everything is idempotent: starting a running stack is a no-op.
#
# Usage (from a script that has `set -euo pipefail`):
#   source scripts/lib/services.sh
#   SVC_ETCD_MEMBERS=1|3           # (before svc_init) etcd cluster size; member n
#                                  # serves clients on etcd_port+2(n-1), peers on the next port
#   svc_init <stack> <dir> <mysql_port> <amqp_port> <etcd_port> <redis_port>
#   SVC_DB_GRANT=global|database   # test: ALL ON *.* WITH GRANT OPTION, dev: ALL ON tickets.*
#   SVC_DURABLE=yes|no             # no: test stack, no flush per commit (throwaway data)
#   SVC_ADMIN_TOKEN=...            # printed by svc_env
#   svc_install_packages           # apt-get install when some binary is missing
#   svc_install_browser            # the same for chromium and chromedriver (scripts/test)
#   svc_start                      # start (or keep) all four servers, wait, provision
#   svc_env                        # print `export VAR=...` lines
#   svc_export_env                 # export those variables into the current shell
#   svc_rabbitmqctl <args...>      # rabbitmqctl against this stack's node
#   svc_status                     # human readable state of the stack
#   svc_stop                       # stop the apps, then the servers, then supervisord
#   svc_server_start <server>      # start mysql|rabbitmq|etcd|redis (etcd: every member down)
#   svc_server_stop <name...>      # stop servers by name (mysql, etcd-2, ...)
#   svc_app_start <name> <cmd...>  # start an app process (current environment, log logs/<name>.log)
#   svc_app_define <name> <cmd...> # the same in two steps, to start several at once:
#   svc_apps_apply <name...>       #   define each, then apply them together
#   svc_app_stop <name...>
#   svc_pid <name>                 # pid of a running server or app (fails if not running)
#   svc_etcd_leader                # name of the etcd member that leads now
#
# Must run as root (chown of the MariaDB data dir, apt-get).
#
# Layout of a stack dir:
#   mysql/ rabbitmq/ etcd/ redis/   data (etcd-1/ etcd-2/ … for a cluster)
#   mysql.cnf etcd-<n>.yml          server config written before each start
#   supervisor/                     app programs (<name>.conf) and their environment
#   run/                            supervisord pid file and socket, MariaDB socket
#   logs/                           server, app and supervisord logs

# Sourced by scripts that already use these options; repeated so the
# library's own code is written against them.
set -euo pipefail

# The server binaries live in sbin directories that are not always on PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac
export PATH

# Seconds to wait for a server to come up / go down.
: "${SVC_START_TIMEOUT:=60}"
: "${SVC_STOP_TIMEOUT:=60}"

SVC_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

svc_log() {
    printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SVC_STACK:-svc}" "$*" >&2
}

svc_die() {
    svc_log "ERROR: $*"
    exit 1
}

# svc_init <stack> <dir> <mysql_port> <amqp_port> <etcd_port> <redis_port>
svc_init() {
    [[ $# -eq 6 ]] || svc_die "svc_init: expected 6 arguments, got $#"
    SVC_STACK=$1
    SVC_DIR=$2
    SVC_MYSQL_PORT=$3
    SVC_AMQP_PORT=$4
    SVC_ETCD_PORT=$5
    SVC_REDIS_PORT=$6
    [[ $SVC_DIR == /* ]] || SVC_DIR="$PWD/$SVC_DIR"
    SVC_RUN="$SVC_DIR/run"
    SVC_LOGS="$SVC_DIR/logs"
    SVC_MYSQL_SOCK="$SVC_RUN/mysqld.sock"
    SVC_RABBIT_NODE="rabbit-$SVC_STACK@localhost"
    SVC_RABBIT_HOME="$SVC_DIR/rabbitmq/home"
    : "${SVC_DB_GRANT:=database}"
    : "${SVC_ADMIN_TOKEN:=dev-admin-token}"
    : "${SVC_ETCD_MEMBERS:=1}"
    # supervisord names the members etcd-1 … etcd-N (one program, numprocs).
    SVC_ETCD_NAMES=()
    local i
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        SVC_ETCD_NAMES+=("etcd-$i")
    done
    SVC_SERVERS=(mysql rabbitmq "${SVC_ETCD_NAMES[@]}" redis)
    local etcd_ports=()
    for ((i = 0; i < 2 * SVC_ETCD_MEMBERS; i++)); do
        etcd_ports+=("$((SVC_ETCD_PORT + i))") # every member's client and peer port
    done
    _svc_check_outside_ephemeral_range "$SVC_MYSQL_PORT" "$SVC_AMQP_PORT" \
        "$((SVC_AMQP_PORT + 20000))" "$((SVC_AMQP_PORT + 21010))" \
        "${etcd_ports[@]}" "$SVC_REDIS_PORT"
}

# A listening port inside the kernel's ephemeral range can be taken at any
# moment by the local end of an outgoing connection (the tests open thousands),
# and then the server fails to bind: a flaky start that no retry cures.
_svc_check_outside_ephemeral_range() {
    local range low high port
    range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || return 0
    read -r low high <<<"$range"
    for port in "$@"; do
        if ((port >= low && port <= high)); then
            svc_die "port $port lies in the ephemeral range $low-$high; pick a port below $low"
        fi
    done
}

_svc_need_init() {
    [[ -n ${SVC_DIR:-} ]] || svc_die "svc_init has not been called"
}

_svc_need_root() {
    [[ $EUID -eq 0 ]] || svc_die "must run as root (needs apt-get and chown for the MariaDB data dir)"
}

# shellcheck source=scripts/lib/packages.sh
source "$SVC_LIB/packages.sh"
# shellcheck source=scripts/lib/supervisor.sh
source "$SVC_LIB/supervisor.sh"
# shellcheck source=scripts/lib/mysql.sh
source "$SVC_LIB/mysql.sh"
# shellcheck source=scripts/lib/rabbitmq.sh
source "$SVC_LIB/rabbitmq.sh"
# shellcheck source=scripts/lib/etcd.sh
source "$SVC_LIB/etcd.sh"
# shellcheck source=scripts/lib/redis.sh
source "$SVC_LIB/redis.sh"
# shellcheck source=scripts/lib/stack.sh
source "$SVC_LIB/stack.sh"
# shellcheck source=scripts/lib/apps.sh
source "$SVC_LIB/apps.sh"
