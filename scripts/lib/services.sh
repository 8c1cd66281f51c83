#!/usr/bin/env bash
# shellcheck shell=bash
#
# services.sh -- bash library shared by scripts/dev and scripts/test.
#
# Why it exists: the ticket system needs MariaDB, RabbitMQ, etcd and Redis.
# CI machines and dev boxes have no systemd (and Debian's policy-rc.d keeps
# package postinst scripts from starting anything), so we run private copies
# of the four servers as plain background processes on loopback.  A "stack"
# is one state directory plus four ports; several stacks (dev + test) can run
# side by side.  Everything is idempotent: starting a running stack is a
# no-op, liveness is decided by pid file + a real protocol probe.
#
# Usage (from a script that has `set -euo pipefail`):
#   source scripts/lib/services.sh
#   SVC_ETCD_MEMBERS=1|3           # (before svc_init) etcd cluster size; member n
#                                  # serves clients on etcd_port+2(n-1), peers on the next port
#   svc_init <stack> <dir> <mysql_port> <amqp_port> <etcd_port> <redis_port>
#   SVC_DB_GRANT=global|database   # test: ALL ON *.* WITH GRANT OPTION, dev: ALL ON tickets.*
#   SVC_DURABLE=yes|no             # no: test stack, no flush per commit (throwaway data)
#   SVC_ADMIN_TOKEN=...            # printed by svc_env
#   svc_install_packages           # apt-get install when some binary is missing
#   svc_start                      # start (or keep) all four servers, wait, provision
#   svc_env                        # print `export VAR=...` lines
#   svc_export_env                 # export those variables into the current shell
#   svc_rabbitmqctl <args...>      # rabbitmqctl against this stack's node
#   svc_status                     # human readable state of the stack
#   svc_stop                       # stop app processes (run/*.pid), then the servers
#   svc_app_start <name> <cmd...>  # start an app process (pid run/<name>.pid, log logs/<name>.log)
#   svc_app_stop <name>
#   svc_etcd_leader                # name of the etcd member that leads now
#
# Must run as root (chown of the MariaDB data dir, apt-get).
#
# Layout of a stack dir:
#   mysql/ rabbitmq/ etcd/ redis/   data (etcd-1/ etcd-2/ … for a cluster)
#   run/                            pid files (+ MariaDB socket)
#   logs/                           server and app logs

# Sourced by scripts that already use these options; repeated so the
# library's own code is written against them.
set -euo pipefail

# The server binaries live in sbin directories that are not always on PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac
export PATH

# Seconds to wait for a server to come up / go down.
: "${SVC_START_TIMEOUT:=60}"
: "${SVC_STOP_TIMEOUT:=60}"

SVC_APT_PACKAGES=(
    mariadb-server mariadb-client rabbitmq-server etcd-server etcd-client
    redis-server protobuf-compiler libprotobuf-dev apache2-utils curl
)
# Binaries (or files) whose absence means "run apt-get".
SVC_REQUIRED_BINS=(
    mariadbd mariadb-install-db mariadb mariadb-admin rabbitmq-server rabbitmqctl
    etcd etcdctl redis-server redis-cli protoc ab curl
)
SVC_REQUIRED_FILES=(/usr/include/google/protobuf/timestamp.proto)

# Names of the server pid files in run/; every other run/*.pid is an app.
SVC_SERVER_PIDS=(mysql rabbitmq etcd redis)

# RabbitMQ scripts, called directly: the /usr/sbin wrappers `su` to the
# rabbitmq user, which resets HOME (erlang cookie) and cwd.
SVC_RABBIT_BIN=/usr/lib/rabbitmq/bin

# ---------------------------------------------------------------- helpers ---

svc_log() {
    printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SVC_STACK:-svc}" "$*" >&2
}

svc_die() {
    svc_log "ERROR: $*"
    exit 1
}

# svc_init <stack> <dir> <mysql_port> <amqp_port> <etcd_port> <redis_port>
svc_init() {
    [[ $# -eq 6 ]] || svc_die "svc_init: expected 6 arguments, got $#"
    SVC_STACK=$1
    SVC_DIR=$2
    SVC_MYSQL_PORT=$3
    SVC_AMQP_PORT=$4
    SVC_ETCD_PORT=$5
    SVC_REDIS_PORT=$6
    [[ $SVC_DIR == /* ]] || SVC_DIR="$PWD/$SVC_DIR"
    SVC_RUN="$SVC_DIR/run"
    SVC_LOGS="$SVC_DIR/logs"
    SVC_MYSQL_SOCK="$SVC_RUN/mysqld.sock"
    SVC_RABBIT_NODE="rabbit-$SVC_STACK@localhost"
    SVC_RABBIT_HOME="$SVC_DIR/rabbitmq/home"
    : "${SVC_DB_GRANT:=database}"
    : "${SVC_ADMIN_TOKEN:=dev-admin-token}"
    : "${SVC_ETCD_MEMBERS:=1}"
    SVC_ETCD_NAMES=()
    local i
    if ((SVC_ETCD_MEMBERS == 1)); then
        SVC_ETCD_NAMES=(etcd)
    else
        for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
            SVC_ETCD_NAMES+=("etcd-$i")
        done
    fi
    SVC_SERVER_PIDS=(mysql rabbitmq "${SVC_ETCD_NAMES[@]}" redis)
    local etcd_ports=()
    for ((i = 0; i < 2 * SVC_ETCD_MEMBERS; i++)); do
        etcd_ports+=("$((SVC_ETCD_PORT + i))") # every member's client and peer port
    done
    _svc_check_outside_ephemeral_range "$SVC_MYSQL_PORT" "$SVC_AMQP_PORT" \
        "$((SVC_AMQP_PORT + 20000))" "$((SVC_AMQP_PORT + 21010))" \
        "${etcd_ports[@]}" "$SVC_REDIS_PORT"
}

# A listening port inside the kernel's ephemeral range can be taken at any
# moment by the local end of an outgoing connection (the tests open thousands),
# and then the server fails to bind: a flaky start that no retry cures.
_svc_check_outside_ephemeral_range() {
    local range low high port
    range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || return 0
    read -r low high <<<"$range"
    for port in "$@"; do
        if ((port >= low && port <= high)); then
            svc_die "port $port lies in the ephemeral range $low-$high; pick a port below $low"
        fi
    done
}

_svc_need_init() {
    [[ -n ${SVC_DIR:-} ]] || svc_die "svc_init has not been called"
}

_svc_need_root() {
    [[ $EUID -eq 0 ]] || svc_die "must run as root (needs apt-get and chown for the MariaDB data dir)"
}

# True when something accepts TCP connections on 127.0.0.1:<port>.
svc_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the pid stored in run/<name>.pid when that process is alive, not a
# zombie, and was started no later than the pid file was written (so a pid
# reused after a crash or reboot is not mistaken for our server); fails
# otherwise.
svc_pid_alive() {
    local f="$SVC_RUN/$1.pid" pid line state fields started mtime
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    pid=${pid//[^0-9]/}
    [[ -n $pid ]] || return 1
    { read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 1
    line=${line##*) } # drop "pid (comm) "; comm may contain spaces
    read -r -a fields <<<"$line"
    state=${fields[0]}
    [[ $state != Z ]] || return 1
    if [[ -z ${_SVC_BTIME:-} ]]; then
        _SVC_BTIME=$(awk '/^btime/ {print $2}' /proc/stat)
        _SVC_HZ=$(getconf CLK_TCK)
    fi
    started=$((_SVC_BTIME + fields[19] / _SVC_HZ)) # field 22: starttime
    mtime=$(stat -c %Y "$f")
    ((started <= mtime + 5)) || return 1
    printf '%s\n' "$pid"
}

# Start "$@" in its own session (so it survives the calling terminal and can
# be stopped as a process group); its pid goes to run/<name>.pid, output to
# <log>.  The child writes its own pid before exec, so the pid is right even
# if setsid has to fork.
_svc_spawn() {
    local name=$1 log=$2
    shift 2
    rm -f "$SVC_RUN/$name.pid"
    # shellcheck disable=SC2016 # $$ and $@ expand in the child bash
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$SVC_RUN/$name.pid" nohup "$@" \
        </dev/null >>"$log" 2>&1 &
    # Wait (briefly) for the pid file so callers can rely on it.
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $SVC_RUN/$name.pid ]] && return 0
        sleep 0.1
    done
    svc_die "could not start $name (no pid file); see $log"
}

_svc_tail_log() {
    local f
    for f in "$@"; do
        [[ -f $f ]] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2 || true
    done
}

# _svc_wait <desc> <pid-name> <timeout> <logs (colon separated)> <probe cmd...>
# Polls the probe until it succeeds; dies (with log tail) if the process
# disappears or the timeout expires.
_svc_wait() {
    local desc=$1 pidname=$2 timeout=$3 logs=$4
    shift 4
    local deadline=$((SECONDS + timeout)) logfiles
    IFS=: read -r -a logfiles <<<"$logs"
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n $pidname ]] && ! svc_pid_alive "$pidname" >/dev/null; then
            _svc_tail_log "${logfiles[@]}"
            svc_die "$desc exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            _svc_tail_log "${logfiles[@]}"
            svc_die "$desc not ready after ${timeout}s"
        fi
        sleep 0.5
    done
}

# Refuse to start a server when its port is taken by a process we don't own.
_svc_check_port_free() {
    local desc=$1 port=$2
    if svc_port_open "$port"; then
        svc_die "$desc: port $port is already in use by another process (not from $SVC_DIR)"
    fi
}

# Make sure <user> can traverse every parent of <path>; add o+x where needed.
_svc_ensure_traversable() {
    local user=$1 path=$2 p
    p=$(dirname "$path")
    while [[ $p != / ]]; do
        if ! runuser -u "$user" -- test -x "$p" 2>/dev/null; then
            svc_log "chmod o+x $p (so that user $user can reach $path)"
            chmod o+x "$p"
        fi
        p=$(dirname "$p")
    done
    runuser -u "$user" -- test -w "$path" ||
        svc_die "user $user cannot write $path"
}

# -------------------------------------------------------------- packages ---

svc_install_packages() {
    local missing=() b f
    for b in "${SVC_REQUIRED_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    for f in "${SVC_REQUIRED_FILES[@]}"; do
        [[ -e $f ]] || missing+=("$f")
    done
    [[ -x $SVC_RABBIT_BIN/rabbitmq-server ]] || missing+=("$SVC_RABBIT_BIN/rabbitmq-server")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    _svc_need_root
    svc_log "missing: ${missing[*]} -> apt-get install ${SVC_APT_PACKAGES[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        "${SVC_APT_PACKAGES[@]}"
    for b in "${SVC_REQUIRED_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || svc_die "$b still missing after apt-get install"
    done
}

# ---------------------------------------------------------------- MariaDB ---

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

_svc_mysql_launch() {
    if svc_pid_alive mysql >/dev/null; then
        svc_log "mariadb already running (pid $(svc_pid_alive mysql))"
        return 0
    fi
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
    _svc_spawn mysql "$SVC_LOGS/mysql.stdout.log" \
        mariadbd --defaults-file="$cnf" --user=mysql --datadir="$data" \
        --socket="$SVC_MYSQL_SOCK" --port="$SVC_MYSQL_PORT" --bind-address=127.0.0.1 \
        --pid-file="$SVC_RUN/mysqld.pid" --log-error="$log"
}

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

# --------------------------------------------------------------- RabbitMQ ---

# Runs a RabbitMQ CLI tool against this stack's node with the stack's env.
svc_rabbitmqctl() {
    _svc_rabbit_envvars
    env "${SVC_RABBIT_ENV[@]}" "$SVC_RABBIT_BIN/rabbitmqctl" -n "$SVC_RABBIT_NODE" "$@"
}

# Fills SVC_RABBIT_ENV with the VAR=value list shared by server and CLI.
# HOME holds the erlang cookie; the CLI gets its own distribution port range
# (the default 35672.. would collide with the test node's dist port).
_svc_rabbit_envvars() {
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

_svc_rabbit_launch() {
    if svc_pid_alive rabbitmq >/dev/null; then
        svc_log "rabbitmq already running (pid $(svc_pid_alive rabbitmq))"
        return 0
    fi
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
    _svc_rabbit_envvars
    (cd "$base" && _svc_spawn rabbitmq "$SVC_LOGS/rabbitmq/startup.log" \
        env "${SVC_RABBIT_ENV[@]}" "$SVC_RABBIT_BIN/rabbitmq-server")
}

_svc_rabbit_probe() {
    svc_rabbitmqctl -q await_startup --timeout 10 && svc_port_open "$SVC_AMQP_PORT"
}

_svc_rabbit_wait() {
    _svc_wait rabbitmq rabbitmq "$SVC_START_TIMEOUT" \
        "$SVC_LOGS/rabbitmq/startup.log:$SVC_LOGS/rabbitmq/$SVC_RABBIT_NODE.log" \
        _svc_rabbit_probe
    svc_log "rabbitmq: ready (amqp://127.0.0.1:$SVC_AMQP_PORT, node $SVC_RABBIT_NODE)"
}

# ------------------------------------------------------------------- etcd ---

# Member <n> (1-based) listens for clients on SVC_ETCD_PORT + 2(n-1) and for
# peers on the port after it.
_svc_etcd_client() { printf 'http://127.0.0.1:%d' "$((SVC_ETCD_PORT + 2 * ($1 - 1)))"; }
_svc_etcd_peer() { printf 'http://127.0.0.1:%d' "$((SVC_ETCD_PORT + 2 * ($1 - 1) + 1))"; }

# Every member's client URL, comma separated.
_svc_etcd_endpoints() {
    local i urls=()
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        urls+=("$(_svc_etcd_client "$i")")
    done
    (IFS=,; printf '%s' "${urls[*]}")
}

_svc_etcdctl() {
    ETCDCTL_API=3 etcdctl --endpoints "$(_svc_etcd_endpoints)" \
        --dial-timeout=2s --command-timeout=3s "$@"
}

# Launch every member that is not running (all of them at first, a stopped
# one after `scripts/chaos service stop etcd`).
_svc_etcd_launch() {
    local i name cluster=() client peer raft_names=("${SVC_ETCD_NAMES[@]}") token=()
    if ((SVC_ETCD_MEMBERS == 1)); then
        # A single member keeps the name it always had (the stack's), so an
        # existing dev or bench data dir starts exactly as before.
        raft_names=("$SVC_STACK")
    else
        token=(--initial-cluster-token "$SVC_STACK")
    fi
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        cluster+=("${raft_names[$((i - 1))]}=$(_svc_etcd_peer "$i")")
    done
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        name=${SVC_ETCD_NAMES[$((i - 1))]}
        client=$(_svc_etcd_client "$i")
        peer=$(_svc_etcd_peer "$i")
        if svc_pid_alive "$name" >/dev/null; then
            svc_log "$name already running (pid $(svc_pid_alive "$name"))"
            continue
        fi
        _svc_check_port_free "$name" "${client##*:}"
        _svc_check_port_free "$name peer" "${peer##*:}"
        mkdir -p "$SVC_DIR/$name"
        chmod 0700 "$SVC_DIR/$name"
        svc_log "$name: starting on $client"
        # env -u: etcd treats ETCD_* variables as flags; ETCD_ENDPOINTS is ours.
        # The initial cluster is only read when the data dir is new.
        _svc_spawn "$name" "$SVC_LOGS/$name.log" \
            env -u ETCD_ENDPOINTS etcd --name "${raft_names[$((i - 1))]}" \
            --data-dir "$SVC_DIR/$name" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$(IFS=,; printf '%s' "${cluster[*]}")" \
            "${token[@]}" --logger zap --log-outputs stderr
    done
}

_svc_etcd_wait() {
    local logs name
    logs=$(printf "$SVC_LOGS/%s.log:" "${SVC_ETCD_NAMES[@]}")
    for name in "${SVC_ETCD_NAMES[@]}"; do
        _svc_wait "$name" "$name" "$SVC_START_TIMEOUT" "${logs%:}" _svc_etcdctl endpoint health
    done
    svc_log "etcd: ready ($(_svc_etcd_endpoints))"
}

# svc_etcd_leader: name of the member that is the raft leader now.
svc_etcd_leader() {
    _svc_need_init
    local i name status
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        name=${SVC_ETCD_NAMES[$((i - 1))]}
        status=$(ETCDCTL_API=3 etcdctl --endpoints "$(_svc_etcd_client "$i")" \
            --dial-timeout=1s --command-timeout=2s endpoint status -w json 2>/dev/null) || continue
        # [{"Status":{"header":{"member_id":M,...},"leader":L,...}}]
        if python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(s["header"]["member_id"] != s["leader"])' <<<"$status"; then
            printf '%s\n' "$name"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------------ Redis ---

_svc_redis_launch() {
    if svc_pid_alive redis >/dev/null; then
        svc_log "redis already running (pid $(svc_pid_alive redis))"
        return 0
    fi
    _svc_check_port_free redis "$SVC_REDIS_PORT"
    mkdir -p "$SVC_DIR/redis"
    rm -f "$SVC_RUN/redis.pid"
    svc_log "redis: starting on 127.0.0.1:$SVC_REDIS_PORT"
    # --daemonize: redis forks, calls setsid and writes its own pid file.
    redis-server --port "$SVC_REDIS_PORT" --bind 127.0.0.1 --dir "$SVC_DIR/redis" \
        --daemonize yes --pidfile "$SVC_RUN/redis.pid" --logfile "$SVC_LOGS/redis.log" \
        --save '' --appendonly no </dev/null >>"$SVC_LOGS/redis.stdout.log" 2>&1 ||
        {
            _svc_tail_log "$SVC_LOGS/redis.log" "$SVC_LOGS/redis.stdout.log"
            svc_die "redis-server failed to start"
        }
}

_svc_redis_probe() {
    [[ $(redis-cli -h 127.0.0.1 -p "$SVC_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

_svc_redis_wait() {
    # The pid file appears a moment after the fork, so probe first.
    _svc_wait redis "" "$SVC_START_TIMEOUT" "$SVC_LOGS/redis.log" _svc_redis_probe
    _svc_wait "redis pid file" "" 10 "$SVC_LOGS/redis.log" svc_pid_alive redis
    svc_log "redis: ready (127.0.0.1:$SVC_REDIS_PORT)"
}

# ------------------------------------------------------------------ stack ---

# Start all four servers (launch all, then wait for each, so the slow ones
# boot in parallel).  Harmless when they are already running.
svc_start() {
    _svc_need_init
    _svc_need_root
    mkdir -p "$SVC_DIR" "$SVC_RUN" "$SVC_LOGS"
    chmod 0755 "$SVC_DIR" "$SVC_LOGS"
    local t0=$SECONDS
    _svc_redis_launch
    _svc_etcd_launch
    _svc_rabbit_launch
    _svc_mysql_launch
    _svc_redis_wait
    _svc_etcd_wait
    _svc_mysql_wait
    _svc_rabbit_wait
    svc_log "all servers up in $((SECONDS - t0))s ($SVC_DIR)"
}

# Send SIGTERM to the process (group) in run/<name>.pid.  Returns the pid.
_svc_term() {
    local name=$1 pid
    pid=$(svc_pid_alive "$name") || {
        rm -f "$SVC_RUN/$name.pid"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    printf '%s\n' "$pid"
}

# True while process group <pgid> has a member that is not a zombie
# (reads /proc directly: no dependency on procps; zombies whose parent is a
# slow-reaping init must not count as running).
_svc_group_alive() {
    local g=$1 f line state pgrp
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        line=${line##*) } # skip "pid (comm) "; comm may contain spaces
        read -r state _ pgrp _ <<<"$line"
        if [[ $pgrp == "$g" && $state != Z ]]; then
            return 0
        fi
    done
    return 1
}

# Wait until the process and its process group are gone; SIGKILL the group
# after <timeout> seconds.
_svc_reap() {
    local name=$1 pid=$2 timeout=$3
    [[ -n $pid ]] || return 0
    local deadline=$((SECONDS + timeout))
    while _svc_group_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            svc_log "$name (pid $pid) did not exit after ${timeout}s, sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$SVC_RUN/$name.pid"
}

# Apps: anything in run/*.pid that is not one of the servers.
_svc_app_names() {
    local f n s skip
    [[ -d $SVC_RUN ]] || return 0
    for f in "$SVC_RUN"/*.pid; do
        [[ -e $f ]] || continue
        n=$(basename "$f" .pid)
        skip=
        for s in "${SVC_SERVER_PIDS[@]}" mysqld rabbitmq-beam; do
            [[ $n == "$s" ]] && skip=1
        done
        [[ -n $skip ]] || printf '%s\n' "$n"
    done
}

# svc_app_start <name> <cmd...>: start an app process of this stack in the
# background (current environment), pid in run/<name>.pid, output appended to
# logs/<name>.log.
svc_app_start() {
    _svc_need_init
    local name=$1
    shift
    mkdir -p "$SVC_RUN" "$SVC_LOGS"
    printf '\n===== %s starting %s =====\n' "$(date '+%F %T')" "$*" >>"$SVC_LOGS/$name.log"
    _svc_spawn "$name" "$SVC_LOGS/$name.log" "$@"
}

# svc_app_stop <name...>: stop app processes (SIGTERM, then SIGKILL after 20s).
svc_app_stop() {
    _svc_need_init
    local name pids=() names=()
    for name in "$@"; do
        names+=("$name")
        pids+=("$(_svc_term "$name")")
    done
    local i
    for i in "${!names[@]}"; do
        _svc_reap "${names[$i]}" "${pids[$i]}" 20
    done
}

# Stop every app started from run/ and then the four servers; waits until
# all processes have exited.
svc_stop() {
    _svc_need_init
    [[ -d $SVC_RUN ]] || return 0
    local apps
    mapfile -t apps < <(_svc_app_names)
    if ((${#apps[@]} > 0)); then
        svc_log "stopping ${apps[*]}"
        svc_app_stop "${apps[@]}"
    fi
    local name pid pids=() names=()
    for name in "${SVC_SERVER_PIDS[@]}"; do
        pid=$(_svc_term "$name")
        if [[ -n $pid ]]; then
            names+=("$name")
            pids+=("$pid")
        fi
    done
    if ((${#names[@]} > 0)); then
        svc_log "stopping ${names[*]}"
    fi
    local i
    for i in "${!names[@]}"; do
        _svc_reap "${names[$i]}" "${pids[$i]}" "$SVC_STOP_TIMEOUT"
    done
    rm -f "$SVC_RUN/rabbitmq-beam.pid" "$SVC_RUN/mysqld.pid" "$SVC_MYSQL_SOCK"
    _svc_epmd_cleanup
    if ((${#names[@]} > 0)); then
        svc_log "stopped"
    fi
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

# Print `export` lines for the binaries and tests.
svc_env() {
    _svc_need_init
    printf 'export %s=%q\n' \
        DATABASE_URL "mysql://tickets:tickets@127.0.0.1:$SVC_MYSQL_PORT/tickets" \
        AMQP_URL "amqp://guest:guest@127.0.0.1:$SVC_AMQP_PORT/%2f" \
        ETCD_ENDPOINTS "$(_svc_etcd_endpoints)" \
        REDIS_URL "redis://127.0.0.1:$SVC_REDIS_PORT" \
        ADMIN_TOKEN "$SVC_ADMIN_TOKEN"
}

# Export the same variables into the current shell.
svc_export_env() {
    eval "$(svc_env)"
}

# One line per server / app: name, state, pid, address.
svc_status() {
    _svc_need_init
    local pid state
    _svc_status_line() {
        local name=$1 addr=$2
        shift 2
        if pid=$(svc_pid_alive "$name"); then
            if "$@" >/dev/null 2>&1; then state=up; else state='running, probe FAILED'; fi
        else
            pid=-
            state=down
        fi
        printf '  %-10s %-22s pid %-8s %s\n' "$name" "$state" "$pid" "$addr"
    }
    echo "stack $SVC_STACK ($SVC_DIR)"
    _svc_status_line mysql "127.0.0.1:$SVC_MYSQL_PORT" _svc_mysql_probe
    _svc_status_line rabbitmq "127.0.0.1:$SVC_AMQP_PORT ($SVC_RABBIT_NODE)" svc_port_open "$SVC_AMQP_PORT"
    local i
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        _svc_status_line "${SVC_ETCD_NAMES[$((i - 1))]}" "$(_svc_etcd_client "$i")" \
            env ETCDCTL_API=3 etcdctl --endpoints "$(_svc_etcd_client "$i")" \
            --dial-timeout=2s --command-timeout=3s endpoint health
    done
    _svc_status_line redis "127.0.0.1:$SVC_REDIS_PORT" _svc_redis_probe
    local app
    while read -r app; do
        [[ -n $app ]] || continue
        _svc_status_line "$app" "log $SVC_LOGS/$app.log" true
    done < <(_svc_app_names)
}
