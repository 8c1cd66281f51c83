#!/usr/bin/env bash
# shellcheck shell=bash
#
# mysql.sh -- MariaDB of a stack: option file, data dir, readiness, the
# `tickets` database and user.
#
# Why it exists: supervisord runs mariadbd (scripts/supervisor/supervisord.conf)
# but cannot create what it needs first (an initialised data dir owned by
# mysql, our option file) nor provision the database once it answers.
# Sourced by services.sh.

_svc_mysql_root() {
    mariadb --no-defaults --protocol=socket --socket="$SVC_MYSQL_SOCK" -uroot --batch "$@"
}

_svc_mysql_probe() {
    mariadb-admin --no-defaults --protocol=socket --socket="$SVC_MYSQL_SOCK" -uroot \
        --connect-timeout=2 ping
}

_svc_mysql_tcp_probe() {
    mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$SVC_MYSQL_PORT" \
        -utickets -ptickets --connect-timeout=2 -e 'SELECT 1' tickets
}

# Everything mariadbd needs before it starts: option file, data dir
# (initialised once), directories it can reach as user mysql.
_svc_mysql_prepare() {
    _svc_check_port_free mariadb "$SVC_MYSQL_PORT"
    local data="$SVC_DIR/mysql" cnf="$SVC_DIR/mysql.cnf" log="$SVC_LOGS/mysql.log"
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -o mysql -g mysql -m 0755 "$SVC_RUN"
    touch "$log"
    chown mysql:mysql "$log"
    rm -f "$SVC_MYSQL_SOCK" "$SVC_RUN/mysqld.pid"

    # Our own option file (instead of /etc/mysql) keeps the stack independent
    # of the system config, while keeping Debian's utf8mb4 defaults.
    {
        echo '[mysqld]'
        echo 'character-set-server = utf8mb4'
        echo 'collation-server = utf8mb4_general_ci'
        echo 'skip-name-resolve'
        echo 'innodb_buffer_pool_size = 256M'
        if [[ ${SVC_DURABLE:-yes} == no ]]; then
            # Test stack: throwaway data, durability is irrelevant. Other
            # stacks (dev, bench) keep the durable default, a flush per
            # commit, like production.
            echo 'innodb_flush_log_at_trx_commit = 2'
            echo 'innodb_doublewrite = 0'
            echo 'sync_binlog = 0'
        fi
        if [[ $SVC_DB_GRANT == global ]]; then
            # Many short-lived databases and connection pools.
            echo 'max_connections = 1000'
        else
            echo 'max_connections = 300'
        fi
    } >"$cnf"
    chmod 0644 "$cnf"

    if [[ ! -f $SVC_DIR/mysql.initialized ]]; then
        rm -rf "$data"
        install -d -o mysql -g mysql -m 0750 "$data"
        _svc_ensure_traversable mysql "$data"
        _svc_ensure_traversable mysql "$SVC_RUN"
        svc_log "mariadb: initialising $data"
        if ! mariadb-install-db --defaults-file="$cnf" --user=mysql --datadir="$data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$SVC_LOGS/mysql-install.log" 2>&1; then
            _svc_tail_log "$SVC_LOGS/mysql-install.log"
            svc_die "mariadb-install-db failed"
        fi
        chown -R mysql:mysql "$data"
        touch "$SVC_DIR/mysql.initialized"
    else
        chown -R mysql:mysql "$data"
        _svc_ensure_traversable mysql "$data"
        _svc_ensure_traversable mysql "$SVC_RUN"
    fi
    svc_log "mariadb: starting on 127.0.0.1:$SVC_MYSQL_PORT"
}

# Wait until mariadbd answers, then create the database and the `tickets`
# user (idempotent) and wait until that user can log in over TCP.
_svc_mysql_wait() {
    _svc_wait mariadb mysql "$SVC_START_TIMEOUT" \
        "$SVC_LOGS/mysql.log:$SVC_LOGS/mysql.stdout.log" _svc_mysql_probe

    local grant grant_opt
    if [[ $SVC_DB_GRANT == global ]]; then
        grant='ALL PRIVILEGES ON *.*'
        grant_opt='WITH GRANT OPTION'
    else
        # shellcheck disable=SC2016 # backticks are SQL quoting
        grant='ALL PRIVILEGES ON `tickets`.*'
        grant_opt=''
    fi
    local host sql="CREATE DATABASE IF NOT EXISTS \`tickets\`;"
    for host in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS 'tickets'@'$host' IDENTIFIED BY 'tickets';"
        sql+="ALTER USER 'tickets'@'$host' IDENTIFIED BY 'tickets';"
        sql+="GRANT $grant TO 'tickets'@'$host' $grant_opt;"
    done
    _svc_mysql_root -e "$sql" || svc_die "mariadb: provisioning database/user failed"
    _svc_wait "mariadb (tcp as tickets)" mysql 15 "$SVC_LOGS/mysql.log" _svc_mysql_tcp_probe
    svc_log "mariadb: ready (127.0.0.1:$SVC_MYSQL_PORT, socket $SVC_MYSQL_SOCK)"
}
