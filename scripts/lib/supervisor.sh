#!/usr/bin/env bash
# shellcheck shell=bash
#
# supervisor.sh -- this stack's supervisord: start it, talk to it, read the
# state of its processes, shut it down.
#
# Why it exists: the servers and apps of a stack run under Debian's
# supervisord (config: scripts/supervisor/supervisord.conf), one supervisord
# per stack with its socket and pid file in the stack's run/, so that the
# dev, test and chaos stacks can run side by side. supervisorctl is a Python
# program (0.3 s a call, seconds on a busy machine), so the library calls it
# only where it must: states are read in one call (_svc_read_states) when a
# wait needs a pid, liveness is then checked in /proc, and the stack is shut
# down with a signal. Sourced
# by services.sh.

SVC_SUPERVISOR_CONF=$(cd "$SVC_LIB/../supervisor" && pwd)/supervisord.conf

# supervisorctl's states, from `supervisorctl status`: by process name
# (servers without their "servers:" group prefix), state and pid if running.
declare -gA SVC_STATE=() SVC_PID=()

# The SVC_* variables that supervisord.conf expands.
_svc_supervisor_env() {
    SVC_SUPERVISOR_ENV=(
        SVC_STACK="$SVC_STACK" SVC_DIR="$SVC_DIR" SVC_RUN="$SVC_RUN" SVC_LOGS="$SVC_LOGS"
        SVC_MYSQL_PORT="$SVC_MYSQL_PORT" SVC_AMQP_PORT="$SVC_AMQP_PORT"
        SVC_RABBIT_NODE="$SVC_RABBIT_NODE" SVC_RABBIT_DIST_PORT="$((SVC_AMQP_PORT + 20000))"
        SVC_ETCD_MEMBERS="$SVC_ETCD_MEMBERS" SVC_REDIS_PORT="$SVC_REDIS_PORT"
        SVC_MYSQL_AUTOSTART="${SVC_MYSQL_AUTOSTART:-true}" SVC_STOP_TIMEOUT="$SVC_STOP_TIMEOUT"
    )
}

_svc_ctl() {
    _svc_supervisor_env
    env "${SVC_SUPERVISOR_ENV[@]}" supervisorctl -c "$SVC_SUPERVISOR_CONF" "$@"
}

# True when process <pid> exists and is not a zombie.
_svc_proc_alive() {
    local line
    [[ -n ${1:-} ]] || return 1
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    line=${line##*) } # drop "pid (comm) "; comm may contain spaces
    [[ ${line%% *} != Z ]]
}

# Prints the pid of this stack's supervisord when it runs. The pid file may
# be left from a supervisord that died: the process must be a supervisord
# started for this very stack dir.
_svc_supervisord_pid() {
    local f="$SVC_RUN/supervisord.pid" pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    pid=${pid//[^0-9]/}
    _svc_proc_alive "$pid" || return 1
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "SVC_DIR=$SVC_DIR" || return 1
    printf '%s\n' "$pid"
}

# Start supervisord for this stack; it starts every server (autostart). App
# programs belong to the supervisord they were added to: any left by one that
# died are removed, not started again.
_svc_supervisord_start() {
    mkdir -p "$SVC_RUN" "$SVC_LOGS" "$SVC_DIR/supervisor"
    rm -f "$SVC_DIR/supervisor"/*.conf "$SVC_DIR/supervisor"/*.env
    _svc_supervisor_env
    # A clean environment: a server sees PATH and what its program section
    # sets, not the variables of whichever script started the stack. No
    # inherited descriptor either: supervisord keeps them for its lifetime,
    # and one may be a lock (`flock dev-stack.lock scripts/dev up` would then
    # hold the lock until the stack stops, and `scripts/dev down` wait on it).
    if ! (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done 2>/dev/null
        exec env -i PATH="$PATH" ${LANG:+LANG="$LANG"} "${SVC_SUPERVISOR_ENV[@]}" \
            supervisord -c "$SVC_SUPERVISOR_CONF"
    ) >>"$SVC_LOGS/supervisord.stdout.log" 2>&1; then
        _svc_tail_log "$SVC_LOGS/supervisord.stdout.log" "$SVC_LOGS/supervisord.log"
        svc_die "supervisord failed to start"
    fi
}

# Fill SVC_STATE and SVC_PID from one `supervisorctl status` (empty when
# supervisord is not running).
# shellcheck disable=SC2034 # read in stack.sh, apps.sh and scripts/dev
_svc_read_states() {
    SVC_STATE=()
    SVC_PID=()
    _svc_supervisord_pid >/dev/null || return 0
    local out name state rest
    # Exit status 3 means "some process is not running": not an error here.
    out=$(_svc_ctl status 2>&1) || true
    while read -r name state rest; do
        case $state in
        STOPPED | STARTING | RUNNING | BACKOFF | STOPPING | EXITED | FATAL | UNKNOWN) ;;
        *) continue ;;
        esac
        name=${name#servers:}
        SVC_STATE[$name]=$state
        if [[ $state == RUNNING && $rest =~ ^pid\ ([0-9]+), ]]; then
            SVC_PID[$name]=${BASH_REMATCH[1]}
        fi
    done <<<"$out"
}

# _svc_supervisor_launch <server...>: start these servers (prepared by the
# caller): a new supervisord starts them all, a running one starts these.
# Their pids are read when a wait needs them (_svc_wait).
_svc_supervisor_launch() {
    local name specs=()
    for name in "$@"; do
        specs+=("servers:$name")
        unset "SVC_PID[$name]" "SVC_STATE[$name]"
    done
    if _svc_supervisord_pid >/dev/null; then
        # A process that fails to spawn is reported by the wait that follows.
        _svc_ctl start "${specs[@]}" >/dev/null || true
    else
        _svc_supervisord_start
    fi
}

# Shut supervisord down (SIGTERM, as `supervisorctl shutdown` does without
# starting a Python client): it stops the apps (one by one, as their priority
# says), then the servers (together), each with TERM and KILL after its
# stopwaitsecs; waits until it has exited.
_svc_supervisord_stop() {
    local pid
    pid=$(_svc_supervisord_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 2 * SVC_STOP_TIMEOUT + 30))
    while _svc_proc_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            svc_log "supervisord (pid $pid) did not exit, sending SIGKILL to it and its processes"
            _svc_kill_children "$pid"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$SVC_RUN/supervisord.pid" "$SVC_RUN/supervisor.sock"
}

# SIGKILL the process group of every child of <pid> (each program runs in a
# group of its own).
_svc_kill_children() {
    local f line fields
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        line=${line##*) }
        read -r -a fields <<<"$line"
        if [[ ${fields[1]} == "$1" ]]; then
            kill -KILL -- "-${fields[2]}" 2>/dev/null || true
        fi
    done
}
