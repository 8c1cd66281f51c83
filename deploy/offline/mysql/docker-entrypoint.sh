#!/bin/bash
# Entrypoint of the MariaDB stand-in for mysql:8.4 (offline path).  Mirrors
# the official image's documented behaviour:
#   - a command that starts with '-' is appended to mysqld;
#   - on an empty data dir: initialise, set the root password from
#     MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD),
#     create root@MYSQL_ROOT_HOST (default %), MYSQL_DATABASE, and
#     MYSQL_USER/MYSQL_PASSWORD with ALL on MYSQL_DATABASE, then run
#     /docker-entrypoint-initdb.d/*.sh (executable: run, else sourced) and
#     *.sql / *.sql.gz against a server that only listens on its socket;
#   - then exec the server (as user mysql) in the foreground.
set -euo pipefail

log() { printf '%s [Entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

if [[ ${1:-} == -* ]]; then
    set -- mysqld "$@"
fi
case "${1:-}" in
mysqld | mariadbd) shift && set -- mariadbd "$@" ;;
*) exec "$@" ;;
esac

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
install -d -o mysql -g mysql -m 0755 /run/mysqld
if [[ $(id -u) == 0 ]]; then
    chown mysql:mysql "$DATADIR"
fi

root_client() {
    # Password through an option file, not the command line.
    mariadb --defaults-extra-file=<(printf '[client]\npassword="%s"\n' "${ROOT_PW:-}") \
        --protocol=socket --socket="$SOCKET" -uroot "$@"
}

process_init_file() {
    local f=$1
    case "$f" in
    *.sh)
        if [[ -x $f ]]; then
            log "running $f"
            "$f"
        else
            log "sourcing $f"
            # shellcheck disable=SC1090
            . "$f"
        fi
        ;;
    *.sql)
        log "running $f"
        root_client "${DB_ARG[@]}" <"$f"
        ;;
    *.sql.gz)
        log "running $f"
        gunzip -c "$f" | root_client "${DB_ARG[@]}"
        ;;
    *) log "ignoring $f" ;;
    esac
}

initialise() {
    if [[ -z ${MYSQL_ROOT_PASSWORD:-} && -z ${MYSQL_ALLOW_EMPTY_PASSWORD:-} && -z ${MYSQL_RANDOM_ROOT_PASSWORD:-} ]]; then
        die "database is uninitialized and password option is not specified
    You need to specify one of the following as an environment variable:
    - MYSQL_ROOT_PASSWORD
    - MYSQL_ALLOW_EMPTY_PASSWORD
    - MYSQL_RANDOM_ROOT_PASSWORD"
    fi
    ROOT_PW=${MYSQL_ROOT_PASSWORD:-}
    if [[ -n ${MYSQL_RANDOM_ROOT_PASSWORD:-} ]]; then
        ROOT_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        log "GENERATED ROOT PASSWORD: $ROOT_PW"
    fi
    log "initializing database files"
    mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
        --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
    log "starting temporary server"
    mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket="$SOCKET" \
        --skip-log-bin "$@" &
    local pid=$! i
    for ((i = 0; i < 60; i++)); do
        if mariadb-admin --protocol=socket --socket="$SOCKET" -uroot ping >/dev/null 2>&1; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || die "temporary server exited"
        sleep 1
    done
    ((i < 60)) || die "temporary server did not start"

    local host=${MYSQL_ROOT_HOST:-%} sql esc
    esc() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
    sql="DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host <> 'localhost');"
    sql+="FLUSH PRIVILEGES;"
    sql+="ALTER USER 'root'@'localhost' IDENTIFIED BY '$(esc "$ROOT_PW")';"
    if [[ $host != localhost ]]; then
        sql+="CREATE USER 'root'@'$(esc "$host")' IDENTIFIED BY '$(esc "$ROOT_PW")';"
        sql+="GRANT ALL ON *.* TO 'root'@'$(esc "$host")' WITH GRANT OPTION;"
    fi
    sql+="FLUSH PRIVILEGES;"
    if [[ -n ${MYSQL_DATABASE:-} ]]; then
        log "creating database $MYSQL_DATABASE"
        sql+="CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    fi
    if [[ -n ${MYSQL_USER:-} && -n ${MYSQL_PASSWORD:-} ]]; then
        log "creating user $MYSQL_USER"
        sql+="CREATE USER '$(esc "$MYSQL_USER")'@'%' IDENTIFIED BY '$(esc "$MYSQL_PASSWORD")';"
        if [[ -n ${MYSQL_DATABASE:-} ]]; then
            sql+="GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$(esc "$MYSQL_USER")'@'%';"
        fi
    fi
    ROOT_PW='' root_client -e "$sql"

    DB_ARG=()
    [[ -z ${MYSQL_DATABASE:-} ]] || DB_ARG=("--database=$MYSQL_DATABASE")
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [[ -e $f ]] || continue
        process_init_file "$f"
    done

    log "stopping temporary server"
    root_client -e 'SHUTDOWN' || kill "$pid"
    wait "$pid" || true
    log "init process done; ready for start up"
}

if [[ ! -d $DATADIR/mysql ]]; then
    initialise "${@:2}"
fi
exec "$@" --user=mysql
