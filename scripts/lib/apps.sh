#!/usr/bin/env bash
# shellcheck shell=bash
#
# apps.sh -- app processes of a stack (api, workers) under its supervisord.
#
# Why it exists: scripts/dev and scripts/fuzz run the system's own binaries
# next to the servers. Each app is a supervisord program of its own, written
# to $SVC_DIR/supervisor/<name>.conf and added with `supervisorctl update`;
# supervisord starts it, logs it to logs/<name>.log, stops it before the
# servers, and never restarts it on its own. Sourced by services.sh.

# Quote one word for a supervisord command line: shell-like words (split by
# Python's shlex), and % doubled (supervisord expands %(...)s).
_svc_conf_word() {
    local w=${1//%/%%}
    printf "'%s'" "${w//\'/\'\"\'\"\'}"
}

_svc_app_conf() { printf '%s/supervisor/%s.conf' "$SVC_DIR" "$1"; }

# svc_app_define <name> <cmd...>: write the program of app <name>, which runs
# <cmd...> in the caller's current environment and directory (saved next to
# it: supervisord gives its programs its own environment). Start it with
# svc_apps_apply; a running app of that name is stopped first.
svc_app_define() {
    _svc_need_init
    local name=$1 conf word command envfile
    shift
    conf=$(_svc_app_conf "$name")
    envfile="$SVC_DIR/supervisor/$name.env"
    if [[ -e $conf ]]; then
        svc_app_stop "$name"
    fi
    mkdir -p "$SVC_DIR/supervisor" "$SVC_LOGS"
    (umask 077 && env -0 >"$envfile") # may hold ADMIN_TOKEN
    # shellcheck disable=SC2016 # expanded by the bash that supervisord starts
    command='bash -c '\''mapfile -d "" -t e <"$0" && exec env -i "${e[@]}" "$@"'\'
    for word in "$envfile" "$@"; do
        command+=" $(_svc_conf_word "$word")"
    done
    printf '\n===== %s starting %s =====\n' "$(date '+%F %T')" "$*" >>"$SVC_LOGS/$name.log"
    cat >"$conf" <<CONF
; App $name of stack $SVC_STACK, written by svc_app_define (scripts/lib/apps.sh).
[program:$name]
command=$command
directory=${PWD//%/%%}
priority=900
startsecs=0
autorestart=false
stopwaitsecs=20
killasgroup=true
redirect_stderr=true
stdout_logfile=$SVC_LOGS/$name.log
stdout_logfile_maxbytes=0
CONF
}

# svc_apps_apply <name...>: start the apps defined by svc_app_define, all in
# one call to supervisord.
svc_apps_apply() {
    _svc_need_init
    _svc_supervisord_pid >/dev/null || svc_die "supervisord of $SVC_STACK is not running (svc_start first)"
    _svc_ctl update "$@" >/dev/null || svc_die "supervisord could not add $*; see $SVC_LOGS/supervisord.log"
    local name
    for name in "$@"; do
        unset "SVC_PID[$name]" "SVC_STATE[$name]"
    done
}

# svc_app_start <name> <cmd...>: start an app process of this stack in the
# background (current environment), output appended to logs/<name>.log.
svc_app_start() {
    svc_app_define "$@"
    svc_apps_apply "$1"
}

# svc_app_stop <name...>: stop app processes (SIGTERM, then SIGKILL after 20s)
# and remove their programs.
svc_app_stop() {
    _svc_need_init
    local name names=()
    for name in "$@"; do
        [[ -e $(_svc_app_conf "$name") ]] || continue
        rm -f "$(_svc_app_conf "$name")" "$SVC_DIR/supervisor/$name.env"
        names+=("$name")
    done
    if ((${#names[@]} > 0)) && _svc_supervisord_pid >/dev/null; then
        _svc_ctl update "${names[@]}" >/dev/null || true
    fi
}

# The apps of this stack, one name a line.
_svc_app_names() {
    local f
    for f in "$SVC_DIR/supervisor"/*.conf; do
        [[ -e $f ]] || continue
        f=${f##*/}
        printf '%s\n' "${f%.conf}"
    done
}

# svc_pid <name>: pid of server or app <name> when supervisord has it running.
svc_pid() {
    _svc_need_init
    _svc_read_states
    [[ -n ${SVC_PID[$1]:-} ]] || return 1
    printf '%s\n' "${SVC_PID[$1]}"
}
