#!/bin/sh
# Entrypoint of the HAProxy stand-in (offline path), as the official image's:
# a first argument that is a flag means "haproxy FLAGS"; haproxy runs in
# master-worker mode in the foreground (-W -db) so that the container's
# PID 1 reloads and stops it.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- haproxy "$@"
fi
if [ "$1" = haproxy ]; then
    shift
    set -- haproxy -W -db "$@"
fi
exec "$@"
