#!/usr/bin/env bash
# shellcheck shell=bash
#
# redis.sh -- Redis of a stack: data dir and readiness.
#
# Why it exists: supervisord runs redis-server in the foreground
# (scripts/supervisor/supervisord.conf); this prepares its dir and tells when
# it answers. Sourced by services.sh.

_svc_redis_prepare() {
    _svc_check_port_free redis "$SVC_REDIS_PORT"
    mkdir -p "$SVC_DIR/redis"
    svc_log "redis: starting on 127.0.0.1:$SVC_REDIS_PORT"
}

_svc_redis_probe() {
    [[ $(redis-cli -h 127.0.0.1 -p "$SVC_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

_svc_redis_wait() {
    _svc_wait redis redis "$SVC_START_TIMEOUT" \
        "$SVC_LOGS/redis.log:$SVC_LOGS/redis.stdout.log" _svc_redis_probe
    svc_log "redis: ready (127.0.0.1:$SVC_REDIS_PORT)"
}
