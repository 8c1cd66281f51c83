#!/bin/sh
# Entrypoint of the Redis stand-in (offline path): `redis-server [flags]`
# runs with protected mode off, as the official image does.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server --protected-mode no "$@"
fi
exec "$@"
