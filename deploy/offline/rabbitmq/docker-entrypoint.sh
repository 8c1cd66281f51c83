#!/bin/bash
# Entrypoint of the RabbitMQ stand-in (offline path): writes the settings the
# official image's configuration has (listen on every interface, logs on the
# console, default user from RABBITMQ_DEFAULT_USER/PASS/VHOST), then runs the
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
    # The variables are consumed; keep them out of the server's environment.
    unset RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST
    shift
    exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
