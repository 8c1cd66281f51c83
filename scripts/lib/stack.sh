#!/usr/bin/env bash
# shellcheck shell=bash
#
# stack.sh -- the four servers of a stack as a whole: start, wait, stop,
# environment, status.
#
# Why it exists: scripts start and stop a stack in one call, and the chaos
# scenarios stop and start one server of it; this puts together the per-server
# preparation (mysql.sh, rabbitmq.sh, etcd.sh, redis.sh) and the stack's
# supervisord (supervisor.sh). Sourced by services.sh.

# True when something accepts TCP connections on 127.0.0.1:<port>.
svc_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_svc_tail_log() {
    local f
    for f in "$@"; do
        [[ -f $f ]] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2 || true
    done
}

# _svc_wait <desc> <name> <timeout> <logs (colon separated)> <probe cmd...>
# Polls the probe until it succeeds; dies (with log tail) if process <name>
# has exited or the timeout expires. The pid comes from supervisord, asked at
# most every 2 s and only while the probe fails (most servers answer first).
_svc_wait() {
    local desc=$1 name=$2 timeout=$3 logs=$4
    shift 4
    local deadline=$((SECONDS + timeout)) ask=$((SECONDS + 2)) logfiles state
    IFS=: read -r -a logfiles <<<"$logs"
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        state=
        if [[ -n ${SVC_PID[$name]:-} ]]; then
            _svc_proc_alive "${SVC_PID[$name]}" || state=exited
        elif ((SECONDS >= ask)); then
            ask=$((SECONDS + 2))
            _svc_read_states
            # STOPPED (not spawned yet) and STARTING are left to the timeout.
            case ${SVC_STATE[$name]:-} in
            EXITED | FATAL | BACKOFF) state=${SVC_STATE[$name]} ;;
            esac
        fi
        if [[ -n $state ]]; then
            _svc_tail_log "${logfiles[@]}"
            svc_die "$desc is not running (supervisord: $state); see $SVC_LOGS/supervisord.log"
        fi
        if ((SECONDS >= deadline)); then
            _svc_tail_log "${logfiles[@]}"
            svc_die "$desc not ready after ${timeout}s"
        fi
        sleep 0.5
    done
}

# Refuse to start a server when its port is taken by a process we don't own.
_svc_check_port_free() {
    local desc=$1 port=$2
    if svc_port_open "$port"; then
        svc_die "$desc: port $port is already in use by another process (not from $SVC_DIR)"
    fi
}

# Make sure <user> can traverse every parent of <path>; add o+x where needed.
_svc_ensure_traversable() {
    local user=$1 path=$2 p
    p=$(dirname "$path")
    while [[ $p != / ]]; do
        if ! runuser -u "$user" -- test -x "$p" 2>/dev/null; then
            svc_log "chmod o+x $p (so that user $user can reach $path)"
            chmod o+x "$p"
        fi
        p=$(dirname "$p")
    done
    runuser -u "$user" -- test -w "$path" ||
        svc_die "user $user cannot write $path"
}

# mysql, rabbitmq, etcd or redis: the kind of server <name> is.
_svc_kind() {
    case $1 in
    etcd-*) printf etcd ;;
    *) printf '%s' "$1" ;;
    esac
}

# _svc_launch <name...>: prepare these servers and have supervisord start
# them. A MariaDB data dir that is new takes seconds to initialise: the other
# servers (RabbitMQ boots slowest) are started first, MariaDB once it is done.
_svc_launch() {
    local name kind early=() late=
    for name in "$@"; do
        if [[ $name == mysql && ! -f $SVC_DIR/mysql.initialized ]]; then
            late=mysql
            continue
        fi
        early+=("$name")
        kind=$(_svc_kind "$name")
        "_svc_${kind/rabbitmq/rabbit}_prepare" "$name"
    done
    if ((${#early[@]} > 0)); then
        SVC_MYSQL_AUTOSTART=${late:+false} _svc_supervisor_launch "${early[@]}"
    fi
    if [[ -n $late ]]; then
        _svc_mysql_prepare
        _svc_supervisor_launch mysql
    fi
}

# Start all four servers (launch all, then wait for each, so the slow ones
# boot in parallel). Harmless when they are already running.
svc_start() {
    _svc_need_init
    _svc_need_root
    mkdir -p "$SVC_DIR" "$SVC_RUN" "$SVC_LOGS" "$SVC_DIR/supervisor"
    chmod 0755 "$SVC_DIR" "$SVC_LOGS"
    local t0=$SECONDS name todo=()
    _svc_read_states
    for name in "${SVC_SERVERS[@]}"; do
        if [[ ${SVC_STATE[$name]:-} == RUNNING ]]; then
            svc_log "$name already running (pid ${SVC_PID[$name]})"
        else
            todo+=("$name")
        fi
    done
    if ((${#todo[@]} > 0)); then
        _svc_launch "${todo[@]}"
    fi
    _svc_redis_wait
    _svc_etcd_wait
    _svc_mysql_wait
    _svc_rabbit_wait
    svc_log "all servers up in $((SECONDS - t0))s ($SVC_DIR)"
}

# svc_server_start mysql|rabbitmq|etcd|redis: start that server of a running
# stack (for etcd every member that is not running) and wait until it answers.
svc_server_start() {
    _svc_need_init
    local server=$1 name todo=()
    _svc_read_states
    for name in "${SVC_SERVERS[@]}"; do
        if [[ $(_svc_kind "$name") == "$server" && ${SVC_STATE[$name]:-} != RUNNING ]]; then
            todo+=("$name")
        fi
    done
    if ((${#todo[@]} > 0)); then
        _svc_launch "${todo[@]}"
    fi
    "_svc_${server/rabbitmq/rabbit}_wait"
}

# svc_server_stop <name...>: stop these servers (TERM; KILL after
# SVC_STOP_TIMEOUT, the stopwaitsecs of supervisord.conf); waits until they
# have exited.
svc_server_stop() {
    _svc_need_init
    local name specs=()
    for name in "$@"; do
        specs+=("servers:$name")
    done
    _svc_supervisord_pid >/dev/null || return 0
    # "not running" is fine: the server is down, as asked.
    _svc_ctl stop "${specs[@]}" >/dev/null || true
}

# Stop every app and the four servers (supervisord's shutdown); waits until
# all processes have exited.
svc_stop() {
    _svc_need_init
    [[ -d $SVC_RUN ]] || return 0
    if _svc_supervisord_pid >/dev/null; then
        svc_log "stopping apps and servers"
        _svc_supervisord_stop
        svc_log "stopped"
    fi
    # The apps belong to the stack's run, not to its next one.
    rm -f "$SVC_DIR/supervisor"/*.conf "$SVC_DIR/supervisor"/*.env
    rm -f "$SVC_RUN/rabbitmq-beam.pid" "$SVC_RUN/mysqld.pid" "$SVC_MYSQL_SOCK"
    _svc_epmd_cleanup
}

# Print `export` lines for the binaries and tests.
svc_env() {
    _svc_need_init
    printf 'export %s=%q\n' \
        DATABASE_URL "mysql://tickets:tickets@127.0.0.1:$SVC_MYSQL_PORT/tickets" \
        AMQP_URL "amqp://guest:guest@127.0.0.1:$SVC_AMQP_PORT/%2f" \
        ETCD_ENDPOINTS "$(_svc_etcd_endpoints)" \
        REDIS_URL "redis://127.0.0.1:$SVC_REDIS_PORT" \
        ADMIN_TOKEN "$SVC_ADMIN_TOKEN"
}

# Export the same variables into the current shell.
svc_export_env() {
    eval "$(svc_env)"
}

# One line per server / app: name, state, pid, address.
svc_status() {
    _svc_need_init
    _svc_read_states
    _svc_status_line() {
        local name=$1 addr=$2 pid state
        shift 2
        if pid=${SVC_PID[$name]:-} && [[ -n $pid ]]; then
            if "$@" >/dev/null 2>&1; then state=up; else state='running, probe FAILED'; fi
        else
            pid=-
            state=${SVC_STATE[$name]:-down}
            state=${state,,}
        fi
        printf '  %-10s %-22s pid %-8s %s\n' "$name" "$state" "$pid" "$addr"
    }
    echo "stack $SVC_STACK ($SVC_DIR)"
    _svc_status_line mysql "127.0.0.1:$SVC_MYSQL_PORT" _svc_mysql_probe
    _svc_status_line rabbitmq "127.0.0.1:$SVC_AMQP_PORT ($SVC_RABBIT_NODE)" svc_port_open "$SVC_AMQP_PORT"
    local i
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        _svc_status_line "${SVC_ETCD_NAMES[$((i - 1))]}" "$(_svc_etcd_client "$i")" \
            env ETCDCTL_API=3 etcdctl --endpoints "$(_svc_etcd_client "$i")" \
            --dial-timeout=2s --command-timeout=3s endpoint health
    done
    _svc_status_line redis "127.0.0.1:$SVC_REDIS_PORT" _svc_redis_probe
    local app
    while read -r app; do
        [[ -n $app ]] || continue
        _svc_status_line "$app" "log $SVC_LOGS/$app.log" true
    done < <(_svc_app_names)
}
