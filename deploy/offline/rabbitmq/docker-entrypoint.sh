#!/bin/bash
# Entrypoint of the RabbitMQ stand-in (offline path): writes the settings the
# official image's configuration has (listen on every interface, logs on the
# console, default user from RABBITMQ_DEFAULT_USER/PASS/VHOST, cookie from
# RABBITMQ_ERLANG_COOKIE), then runs the
# server in the foreground as user rabbitmq.
set -euo pipefail

if [[ ${1:-} == rabbitmq-server ]]; then
    conf=/etc/rabbitmq/conf.d/10-standin.conf
    {
        echo 'loopback_users.guest = false'
        echo 'listeners.tcp.default = 5672'
        echo 'log.console = true'
        echo 'log.console.level = info'
        echo 'log.file = false'
        [[ -z ${RABBITMQ_DEFAULT_USER:-} ]] || echo "default_user = $RABBITMQ_DEFAULT_USER"
        [[ -z ${RABBITMQ_DEFAULT_PASS:-} ]] || echo "default_pass = $RABBITMQ_DEFAULT_PASS"
        [[ -z ${RABBITMQ_DEFAULT_VHOST:-} ]] || echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
    } >"$conf"
    chmod 0600 "$conf"
    # Nodes of one cluster share the Erlang cookie (the official image
    # takes it from this variable too); the CLI tools read the file.
    if [[ -n ${RABBITMQ_ERLANG_COOKIE:-} ]]; then
        cookie=$HOME/.erlang.cookie
        [[ ! -e $cookie ]] || chmod 0600 "$cookie"
        printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$cookie"
        chmod 0400 "$cookie"
    fi
    # The variables are consumed; keep them out of the server's environment.
    unset RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST
    shift
    exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
