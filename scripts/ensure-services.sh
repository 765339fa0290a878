#!/usr/bin/env bash
# Make sure PostgreSQL and Redis are answering on 127.0.0.1; start them if not.
# Installs the Debian packages first when the binaries are missing (fresh machine).
set -euo pipefail

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
WAIT_SECONDS=${WAIT_SECONDS:-30}

die() { echo "ensure-services: ERROR: $*" >&2; exit 1; }
log() { echo "ensure-services: $*" >&2; }

apt_install() {
    log "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# wait_for NAME CHECK-COMMAND...
wait_for() {
    local name=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            return 1
        fi
        sleep 0.5
    done
    log "$name is up"
}

pg_up()    { pg_isready -q -h 127.0.0.1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = "PONG" ]; }

# ---- PostgreSQL ------------------------------------------------------------
if ! command -v pg_isready >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
fi
if pg_up; then
    log "PostgreSQL is up"
else
    log "PostgreSQL is down; starting it"
    [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ] \
        || die "no cluster under /etc/postgresql (is the postgresql package installed?)"
    # shellcheck disable=SC2046
    $SUDO pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
        || log "pg_ctlcluster returned $? (waiting anyway)"
    if ! wait_for PostgreSQL pg_up; then
        pg_lsclusters >&2 || true
        tail -n 30 /var/log/postgresql/*.log >&2 2>/dev/null || true
        die "PostgreSQL not accepting connections on 127.0.0.1 after ${WAIT_SECONDS}s"
    fi
fi

# ---- Redis -----------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
fi
if redis_up; then
    log "Redis is up"
else
    log "Redis is down; starting it"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        || log "redis-server returned $? (waiting anyway)"
    if ! wait_for Redis redis_up; then
        tail -n 30 /var/log/redis/ci.log >&2 2>/dev/null || true
        die "Redis not answering PING on 127.0.0.1:6379 after ${WAIT_SECONDS}s"
    fi
fi
