#!/usr/bin/env bash
# shellcheck shell=bash
#
# packages.sh -- installs the Debian packages a stack needs, on demand.
#
# Why it exists: `scripts/dev up` and `scripts/test` must work on a fresh
# Debian bookworm machine; apt-get runs only when a binary is missing, so a
# warm machine pays nothing. Sourced by services.sh.

SVC_APT_PACKAGES=(
    mariadb-server mariadb-client rabbitmq-server etcd-server etcd-client
    redis-server supervisor protobuf-compiler libprotobuf-dev apache2-utils curl
)
# Binaries (or files) whose absence means "run apt-get".
SVC_REQUIRED_BINS=(
    mariadbd mariadb-install-db mariadb mariadb-admin rabbitmq-server rabbitmqctl
    etcd etcdctl redis-server redis-cli supervisord supervisorctl protoc ab curl
)
SVC_REQUIRED_FILES=(/usr/include/google/protobuf/timestamp.proto)
# Only scripts/test needs a browser (the live page's test drives a headless
# Chromium through chromedriver); the other stacks do without its ~300 MB.
SVC_BROWSER_PACKAGES=(chromium chromium-driver)
SVC_BROWSER_BINS=(chromium chromedriver)

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
    # Whatever a postinst starts (nothing here: no systemd, policy-rc.d), a
    # stack runs its own copies under its own supervisord, socket and ports.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        "${SVC_APT_PACKAGES[@]}"
    for b in "${SVC_REQUIRED_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || svc_die "$b still missing after apt-get install"
    done
}

svc_install_browser() {
    local missing=() b
    for b in "${SVC_BROWSER_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    _svc_need_root
    svc_log "missing: ${missing[*]} -> apt-get install ${SVC_BROWSER_PACKAGES[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${SVC_BROWSER_PACKAGES[@]}"
    for b in "${SVC_BROWSER_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || svc_die "$b still missing after apt-get install"
    done
}
