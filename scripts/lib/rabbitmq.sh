#!/usr/bin/env bash
# shellcheck shell=bash
#
# rabbitmq.sh -- RabbitMQ of a stack: node config, Erlang cookie, readiness,
# and rabbitmqctl against the stack's node.
#
# Why it exists: supervisord runs the node (scripts/supervisor/supervisord.conf
# sets its RABBITMQ_* environment); the config files it reads, the cookie the
# CLI shares with it and the CLI's own environment are written here. Sourced
# by services.sh.

# RabbitMQ scripts, called directly: the /usr/sbin wrappers `su` to the
# rabbitmq user, which resets HOME (erlang cookie) and cwd.
SVC_RABBIT_BIN=/usr/lib/rabbitmq/bin

# Runs a RabbitMQ CLI tool against this stack's node with the stack's env.
svc_rabbitmqctl() {
    _svc_rabbit_cli_env
    env "${SVC_RABBIT_ENV[@]}" "$SVC_RABBIT_BIN/rabbitmqctl" -n "$SVC_RABBIT_NODE" "$@"
}

# Fills SVC_RABBIT_ENV with the CLI's VAR=value list: the node's settings
# (the same as in the rabbitmq program of supervisord.conf), so the CLI finds
# the node as it was started. HOME holds the erlang cookie; the CLI gets its
# own distribution port range (the default 35672.. would collide with the
# test node's dist port).
_svc_rabbit_cli_env() {
    local amqp=$SVC_AMQP_PORT
    SVC_RABBIT_ENV=(
        HOME="$SVC_RABBIT_HOME"
        RABBITMQ_NODENAME="$SVC_RABBIT_NODE"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$amqp"
        RABBITMQ_DIST_PORT="$((amqp + 20000))"
        RABBITMQ_CTL_DIST_PORT_MIN="$((amqp + 21000))"
        RABBITMQ_CTL_DIST_PORT_MAX="$((amqp + 21010))"
        RABBITMQ_MNESIA_BASE="$SVC_DIR/rabbitmq/mnesia"
        RABBITMQ_LOG_BASE="$SVC_LOGS/rabbitmq"
        RABBITMQ_CONFIG_FILE="$SVC_DIR/rabbitmq/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$SVC_DIR/rabbitmq/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$SVC_DIR/rabbitmq/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$SVC_DIR/rabbitmq/rabbitmq-env.conf"
        RABBITMQ_PID_FILE="$SVC_RUN/rabbitmq-beam.pid"
        ERL_EPMD_ADDRESS=127.0.0.1
    )
}

_svc_rabbit_prepare() {
    _svc_check_port_free rabbitmq "$SVC_AMQP_PORT"
    _svc_check_port_free "rabbitmq distribution" "$((SVC_AMQP_PORT + 20000))"
    local base="$SVC_DIR/rabbitmq"
    mkdir -p "$base/mnesia" "$SVC_RABBIT_HOME" "$SVC_LOGS/rabbitmq"
    # Same cookie as the system rabbitmq user, so that the stock
    # `rabbitmqctl -n rabbit-<stack>@localhost ...` (which su's to rabbitmq
    # and uses /var/lib/rabbitmq/.erlang.cookie) can talk to our node too.
    local cookie="$SVC_RABBIT_HOME/.erlang.cookie"
    if [[ ! -s $cookie ]]; then
        if [[ -s /var/lib/rabbitmq/.erlang.cookie ]]; then
            cat /var/lib/rabbitmq/.erlang.cookie >"$cookie"
        else
            od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$cookie"
        fi
    fi
    chmod 0400 "$cookie"
    {
        echo 'loopback_users.guest = true'
        echo 'log.console = false'
        echo 'log.file.level = info'
        echo 'disk_free_limit.absolute = 50MB'
        echo 'vm_memory_high_watermark.relative = 0.4'
    } >"$base/rabbitmq.conf"
    # Keep the distribution listener on loopback as well.
    echo '[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].' >"$base/advanced.config"
    echo '[].' >"$base/enabled_plugins"
    : >"$base/rabbitmq-env.conf" # do not pick up /etc/rabbitmq/rabbitmq-env.conf
    svc_log "rabbitmq: starting node $SVC_RABBIT_NODE on 127.0.0.1:$SVC_AMQP_PORT"
}

# The AMQP port opens late in the node's boot; until then the probe costs a
# connect, not an Erlang VM for rabbitmqctl competing with the booting node.
_svc_rabbit_probe() {
    svc_port_open "$SVC_AMQP_PORT" && svc_rabbitmqctl -q await_startup --timeout 10
}

_svc_rabbit_wait() {
    _svc_wait rabbitmq rabbitmq "$SVC_START_TIMEOUT" \
        "$SVC_LOGS/rabbitmq/startup.log:$SVC_LOGS/rabbitmq/$SVC_RABBIT_NODE.log" \
        _svc_rabbit_probe
    svc_log "rabbitmq: ready (amqp://127.0.0.1:$SVC_AMQP_PORT, node $SVC_RABBIT_NODE)"
}

# RabbitMQ starts a shared epmd daemon; kill it once no node is registered.
_svc_epmd_cleanup() {
    command -v epmd >/dev/null 2>&1 || return 0
    local names
    names=$(epmd -names 2>/dev/null) || return 0
    if ! grep -q '^name ' <<<"$names"; then
        epmd -kill >/dev/null 2>&1 || true
    fi
}
