#!/usr/bin/env bash
# shellcheck shell=bash
#
# etcd.sh -- etcd of a stack, one member or a cluster: each member's config
# file, readiness, and which member leads.
#
# Why it exists: supervisord runs the members etcd-1 … etcd-N
# (scripts/supervisor/supervisord.conf), each with the YAML written here;
# names, URLs and the initial cluster depend on the stack's ports and size.
# Sourced by services.sh.

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

# Raft name and data dir of member <n>. A single member keeps the name and
# dir it always had (the stack's name, etcd/), so an existing dev or bench
# data dir starts as before; cluster members are etcd-<n> in etcd-<n>/.
_svc_etcd_raft_name() {
    if ((SVC_ETCD_MEMBERS == 1)); then printf '%s' "$SVC_STACK"; else printf 'etcd-%d' "$1"; fi
}
_svc_etcd_data_dir() {
    if ((SVC_ETCD_MEMBERS == 1)); then printf '%s/etcd' "$SVC_DIR"; else printf '%s/etcd-%d' "$SVC_DIR" "$1"; fi
}

# name=peer-url of every member, comma separated.
_svc_etcd_initial_cluster() {
    local i cluster=()
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        cluster+=("$(_svc_etcd_raft_name "$i")=$(_svc_etcd_peer "$i")")
    done
    (IFS=,; printf '%s' "${cluster[*]}")
}

# _svc_etcd_prepare <etcd-n>: data dir and config file of member n. The
# initial cluster is only read when the data dir is new.
_svc_etcd_prepare() {
    local n=${1#etcd-} client peer data
    client=$(_svc_etcd_client "$n")
    peer=$(_svc_etcd_peer "$n")
    data=$(_svc_etcd_data_dir "$n")
    _svc_check_port_free "$1" "${client##*:}"
    _svc_check_port_free "$1 peer" "${peer##*:}"
    mkdir -p "$data"
    chmod 0700 "$data"
    {
        echo "name: $(_svc_etcd_raft_name "$n")"
        echo "data-dir: $data"
        echo "listen-client-urls: $client"
        echo "advertise-client-urls: $client"
        echo "listen-peer-urls: $peer"
        echo "initial-advertise-peer-urls: $peer"
        echo "initial-cluster: $(_svc_etcd_initial_cluster)"
        if ((SVC_ETCD_MEMBERS > 1)); then
            echo "initial-cluster-token: $SVC_STACK"
        fi
        echo "logger: zap"
        echo "log-outputs: [stderr]"
    } >"$SVC_DIR/etcd-$n.yml"
    svc_log "$1: starting on $client"
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
    local i status
    for ((i = 1; i <= SVC_ETCD_MEMBERS; i++)); do
        status=$(ETCDCTL_API=3 etcdctl --endpoints "$(_svc_etcd_client "$i")" \
            --dial-timeout=1s --command-timeout=2s endpoint status -w json 2>/dev/null) || continue
        # [{"Status":{"header":{"member_id":M,...},"leader":L,...}}]
        if python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(s["header"]["member_id"] != s["leader"])' <<<"$status"; then
            printf '%s\n' "${SVC_ETCD_NAMES[$((i - 1))]}"
            return 0
        fi
    done
    return 1
}
