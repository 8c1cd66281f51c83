# shellcheck shell=bash
#
# scripts/lib/compose-cluster.sh -- the node-loss run of
# `scripts/compose-test --cluster` (sourced by it; uses its dc, phase,
# result, die, log, wait_healthy, new_event, CHECK, SQL_APP, WORK).
#
# Why it exists: docker-compose.cluster.yml claims that losing one RabbitMQ
# node or one etcd member, by a crash or by a network partition, costs
# neither a confirmed reservation nor a ticket.  Under steady reservation
# traffic through the proxy this run, in order:
#   kills (SIGKILL) the RabbitMQ node leading the command queue, starts it
#   again; kills the etcd leader, starts it again; cuts one other RabbitMQ
#   node and one other etcd member off the network (docker network
#   disconnect), connects them again;
# then checks every answer against the primary (compose_check.py verify:
# capacity = available + confirmed, 200s confirmed with their quantity,
# 409s not), that both clusters are whole again with the queue replicated
# on three nodes, and that the replica holds the same rows as the primary.

ETCD_ALL=http://etcd:2379,http://etcd2:2379,http://etcd3:2379

# "<name>\t<type>\t<leader>\t<members>" of the command queues, one a line.
rabbit_queues() {
    dc exec -T rabbitmq rabbitmqctl -q list_queues name type leader members 2>/dev/null |
        awk -F'\t' '$1 ~ /\.commands(\.[0-9]+)?$/ { print }'
}

# Running nodes as the cluster (node rabbitmq, else rabbitmq2) sees them.
rabbit_running() {
    local node
    for node in rabbitmq rabbitmq2; do
        dc exec -T "$node" rabbitmq-diagnostics -q cluster_status --formatter json 2>/dev/null |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null &&
            return 0
    done
    echo 0
}

# The etcd member that leads ("etcd", "etcd2", "etcd3").
etcd_leader() {
    dc exec -T etcd2 etcdctl --endpoints="$ETCD_ALL" endpoint status 2>/dev/null |
        awk -F', ' '$5 == "true" { sub("http://", "", $1); sub(":2379", "", $1); print $1 }'
}

etcd_healthy() {
    dc exec -T etcd2 etcdctl --endpoints="$ETCD_ALL" endpoint health 2>&1 | grep -c 'is healthy'
}

# Waits until <command> prints <want>, for up to <seconds>.
await_value() { # <what> <want> <seconds> <command...>
    local what=$1 want=$2 deadline=$((SECONDS + $3)) got
    shift 3
    while true; do
        got=$("$@" || true)
        [[ $got == "$want" ]] && return 0
        ((SECONDS < deadline)) || die "$what: $got, expected $want"
        sleep 2
    done
}

# Same rows in the primary and the replica (once it caught up).
replica_digest() { # <service>
    dc exec -T "$1" mysql -uroot -p"$ROOT_PW" -N -B tickets -e \
        "SELECT (SELECT COUNT(*) FROM reservations), (SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE status = 'confirmed'), (SELECT COALESCE(SUM(available), 0) FROM events), (SELECT COUNT(*) FROM events)" 2>/dev/null
}

cluster_node_loss() {
    phase "cluster: membership before the faults"
    await_value "running RabbitMQ nodes" 3 120 rabbit_running
    await_value "healthy etcd members" 3 60 etcd_healthy
    local queues leader_node rmq_kill rmq_cut etcd_kill etcd_cut network
    queues=$(rabbit_queues)
    [[ -n $queues ]] || die "no command queue declared"
    result "cluster: 3 RabbitMQ nodes running, 3 etcd members healthy, etcd leader $(etcd_leader)"
    result "  command queues (name type leader members): $(paste -sd';' <<<"$queues")"
    grep -q quorum <<<"$queues" || die "command queues are not quorum queues: $queues"
    awk -F'\t' '{ n = gsub(/rabbit@/, "&", $4); if (n != 3) exit 1 }' <<<"$queues" ||
        die "a command queue is not replicated on 3 nodes: $queues"
    leader_node=$(awk -F'\t' 'NR == 1 { sub("rabbit@", "", $3); print $3 }' <<<"$queues")
    rmq_kill=$leader_node
    rmq_cut=$(printf '%s\n' rabbitmq rabbitmq2 rabbitmq3 | grep -vx "$rmq_kill" | tail -n 1)
    etcd_kill=$(etcd_leader)
    [[ -n $etcd_kill ]] || die "no etcd leader"
    etcd_cut=$(printf '%s\n' etcd etcd2 etcd3 | grep -vx "$etcd_kill" | tail -n 1)
    network=${COMPOSE_PROJECT_NAME}_default
    local id_rmq_kill id_rmq_cut id_etcd_kill id_etcd_cut
    id_rmq_kill=$(dc ps -q "$rmq_kill")
    id_rmq_cut=$(dc ps -q "$rmq_cut")
    id_etcd_kill=$(dc ps -q "$etcd_kill")
    id_etcd_cut=$(dc ps -q "$etcd_cut")

    phase "cluster: node loss under load"
    local event
    event=$(new_event "compose-test cluster node loss" 2000)
    local load_rc=0 verify verify_rc=0 summary
    log "event $event (2000 tickets), 1500 reservations at 25/s; kill $rmq_kill (queue leader) and $etcd_kill (etcd leader), cut off $rmq_cut and $etcd_cut"
    $CHECK load --base-url "$BASE_URL" --event "$event" --requests 1500 --concurrency 40 \
        --rate 25 --max-quantity 4 --out "$WORK/load-cluster.json" \
        --fault "100:kill-$rmq_kill:docker kill -s KILL $id_rmq_kill" \
        --fault "500:start-$rmq_kill:docker start $id_rmq_kill" \
        --fault "600:kill-$etcd_kill:docker kill -s KILL $id_etcd_kill" \
        --fault "850:start-$etcd_kill:docker start $id_etcd_kill" \
        --fault "900:cut-$rmq_cut:docker network disconnect $network $id_rmq_cut" \
        --fault "1000:cut-$etcd_cut:docker network disconnect $network $id_etcd_cut" \
        --fault "1300:join-$rmq_cut:docker network connect --alias $rmq_cut $network $id_rmq_cut" \
        --fault "1350:join-$etcd_cut:docker network connect --alias $etcd_cut $network $id_etcd_cut" >&2 ||
        load_rc=$?
    # The database is checked even when some request got no final answer,
    # so that a run says both what was lost and what held.
    verify=$($CHECK verify --results "$WORK/load-cluster.json" --event "$event" --sql "$SQL_APP" 2>"$WORK/verify.err") ||
        verify_rc=$?
    summary=$($CHECK summary --results "$WORK/load-cluster.json")
    result "node loss under load: $summary"
    result "  database: $verify"
    while IFS= read -r line; do
        result "  $line"
    done < <($CHECK windows --results "$WORK/load-cluster.json"
        if [[ -s $WORK/verify.err ]]; then
            echo "$(wc -l <"$WORK/verify.err") problem lines, the first:"
            head -n 6 "$WORK/verify.err"
        fi)
    ((load_rc == 0 && verify_rc == 0)) || die "node loss: load exit $load_rc, verify exit $verify_rc (above)"

    phase "cluster: healed, replica in step"
    await_value "running RabbitMQ nodes after the faults" 3 180 rabbit_running
    await_value "healthy etcd members after the faults" 3 120 etcd_healthy
    queues=$(rabbit_queues)
    result "cluster after the faults: 3 RabbitMQ nodes running, 3 etcd members healthy, etcd leader $(etcd_leader)"
    # What the cut-off node did about it (pause_minority).
    result "  $rmq_cut log on the partition: $(dc logs --no-color "$rmq_cut" 2>/dev/null | grep -iE 'minority|partition' |
        sed 's/^[^|]*| *//' | cut -c1-140 | head -n 3 | paste -sd'|')"
    result "  command queues (name type leader members): $(paste -sd';' <<<"$queues")"
    local primary replica_sql_running
    primary=$(replica_digest mysql)
    await_value "replica rows (reservations, confirmed quantity, available, events) vs primary $primary" \
        "$primary" 60 replica_digest mysql-replica
    replica_sql_running=$(dc exec -T mysql-replica mysql -uroot -p"$ROOT_PW" -e 'SHOW SLAVE STATUS\G' 2>/dev/null |
        awk '/Slave_(IO|SQL)_Running:/ { printf "%s %s ", $1, $2 }')
    local replica_inv
    replica_inv=$($CHECK invariants --sql "${COMPOSE[*]} --env-file $ENV_FILE exec -T mysql-replica mysql -uroot -p$ROOT_PW -N -B tickets 2>/dev/null") ||
        die "replica: $replica_inv"
    result "replica: same (reservations, confirmed quantity, Σ available, events) as the primary: $(tr '\t' ' ' <<<"$primary"); invariants $replica_inv; $replica_sql_running"
}
