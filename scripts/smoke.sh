#!/usr/bin/env bash
# End-to-end smoke test: start `geostream-dns serve` on free ports with the
# sample zones and check its answers with dig. Prints PASS/FAIL per check and
# `smoke: N passed, M failed`; exits non-zero on any failure.
#
#   GEOSTREAM_BIN   server executable (default .venv/bin/geostream-dns)
#   READY_TIMEOUT   seconds to wait for /ready (default 15)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${GEOSTREAM_BIN:-.venv/bin/geostream-dns}
READY_TIMEOUT=${READY_TIMEOUT:-15}
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3

command -v dig >/dev/null 2>&1 || { echo "smoke: dig not found (run: make tools)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "smoke: $BIN not found (run: make venv)" >&2; exit 2; }

# Free ports: the DNS port must be free for both UDP and TCP.
read -r PORT HTTPPORT < <("$PY" - <<'PYEOF'
import socket
def free(avoid=()):
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        p = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            t.close(); u.close()
        if p not in avoid:
            return p
    raise SystemExit("no free port")
a = free(); b = free({a})
print(a, b)
PYEOF
)
[ -n "${PORT:-}" ] && [ -n "${HTTPPORT:-}" ] || { echo "smoke: could not pick free ports" >&2; exit 2; }

STATE_DIR=$(mktemp -d)
LOG=$(mktemp)
SERVER_PID=""
PASSED=0
FAILED=0

cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "$rc" -ne 0 ] && [ -s "$LOG" ]; then
        echo "---- server log (last 40 lines) ----" >&2
        tail -n 40 "$LOG" >&2
    fi
    rm -rf "$STATE_DIR" "$LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "smoke: starting $BIN on 127.0.0.1:$PORT (http 127.0.0.1:$HTTPPORT)"
# --no-probe: the sample zones' pool values are documentation addresses, which
# a test must never contact; every value counts as up.
"$BIN" serve --zones zones/ --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HTTPPORT" \
    --state-dir "$STATE_DIR" --no-probe 2>"$LOG" >&2 &
SERVER_PID=$!

http_ok() {  # http_ok PATH -> 0 when GET returns 2xx
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$HTTPPORT$1" 2>/dev/null
    else
        "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "http://127.0.0.1:$HTTPPORT$1" 2>/dev/null
    fi
}

deadline=$((SECONDS + READY_TIMEOUT))
until http_ok /ready; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "smoke: FAIL: server exited before becoming ready" >&2; exit 1
    fi
    if (( SECONDS >= deadline )); then
        echo "smoke: FAIL: /ready not OK within ${READY_TIMEOUT}s" >&2; exit 1
    fi
    sleep 0.2
done
echo "smoke: server ready (pid $SERVER_PID)"

# ---- helpers ---------------------------------------------------------------
q() { dig @127.0.0.1 -p "$PORT" +time=2 +tries=1 "$@" 2>&1; }
# section NAME < dig-output: the records of ";; NAME SECTION:"
section() { awk -v s=";; $1 SECTION:" '$0==s {f=1; next} f && /^$/ {exit} f && !/^;/ {print}'; }
# rdata TYPE < records: rdata of records of that type, sorted
rdata() { awk -v t="$1" '$4==t {$1=$2=$3=$4=""; sub(/^ +/, ""); print}' | sort; }
status() { grep -o 'status: [A-Z]*' | head -n1 | cut -d' ' -f2; }
flags() { sed -n 's/.*;; flags: \([a-z ]*\);.*/\1/p' | head -n1; }

OUT=""
WHY=""
check() {  # check "description" function
    local desc=$1; shift
    WHY=""
    if "$@"; then
        PASSED=$((PASSED + 1)); echo "PASS  $desc"
    else
        FAILED=$((FAILED + 1)); echo "FAIL  $desc${WHY:+ -- $WHY}"
        [ -n "$OUT" ] && printf '%s\n' "$OUT" | sed 's/^/      | /'
    fi
    OUT=""
}
expect_eq() {  # expect_eq WHAT GOT WANT
    [ "$2" = "$3" ] && return 0
    WHY="$1: got [$(echo "$2" | paste -sd, -)], want [$(echo "$3" | paste -sd, -)]"; return 1
}

# ---- checks ----------------------------------------------------------------
t_static_a() {
    OUT=$(q +short static.example.com A)
    expect_eq "A" "$(echo "$OUT" | sort)" $'192.0.2.80\n192.0.2.81'
}
t_aa_flags() {
    OUT=$(q +norec static.example.com A)
    expect_eq "flags" "$(echo "$OUT" | flags)" "qr aa"
}
t_refused() {
    OUT=$(q +norec www.example.net A)
    expect_eq "status" "$(echo "$OUT" | status)" "REFUSED"
}
t_nxdomain() {
    OUT=$(q +norec nosuch.example.com A)
    expect_eq "status" "$(echo "$OUT" | status)" "NXDOMAIN" || return 1
    expect_eq "answer" "$(echo "$OUT" | section ANSWER)" "" || return 1
    expect_eq "authority SOA owner" \
        "$(echo "$OUT" | section AUTHORITY | awk '$4=="SOA" {print $1}')" "example.com." || return 1
    expect_eq "SOA TTL (min(ttl, negative_ttl))" \
        "$(echo "$OUT" | section AUTHORITY | awk '$4=="SOA" {print $2}')" "300"
}
t_nodata() {
    OUT=$(q +norec mail.example.com AAAA)
    expect_eq "status" "$(echo "$OUT" | status)" "NOERROR" || return 1
    expect_eq "answer" "$(echo "$OUT" | section ANSWER)" "" || return 1
    expect_eq "authority SOA owner" \
        "$(echo "$OUT" | section AUTHORITY | awk '$4=="SOA" {print $1}')" "example.com."
}
t_wildcard() {
    OUT=$(q foo.static.example.com A)
    expect_eq "A" "$(echo "$OUT" | section ANSWER | rdata A)" "192.0.2.99" || return 1
    expect_eq "owner" "$(echo "$OUT" | section ANSWER | awk '{print $1}')" \
        "foo.static.example.com."
}
t_tcp() {
    OUT=$(q +tcp +short static.example.com A)
    expect_eq "A over TCP" "$(echo "$OUT" | sort)" $'192.0.2.80\n192.0.2.81'
}
t_edns_opt() {
    OUT=$(q +edns=0 static.example.com A)
    echo "$OUT" | grep -q 'EDNS: version: 0' || { WHY="no OPT (EDNS version 0) in reply"; return 1; }
}
t_badvers() {
    OUT=$(q +edns=1 +noednsnegotiation static.example.com A)
    expect_eq "status" "$(echo "$OUT" | status)" "BADVERS"
}
t_delegation() {
    OUT=$(q +norec www.shop.example.com A)
    local auth add
    expect_eq "status" "$(echo "$OUT" | status)" "NOERROR" || return 1
    case " $(echo "$OUT" | flags) " in *" aa "*) WHY="aa set on a referral"; return 1;; esac
    expect_eq "answer" "$(echo "$OUT" | section ANSWER)" "" || return 1
    auth=$(echo "$OUT" | section AUTHORITY)
    expect_eq "authority NS" "$(echo "$auth" | awk '$1=="shop.example.com." && $4=="NS" {print $5}' | sort)" \
        $'ns1.shop.example.com.\nns2.shop.example.com.' || return 1
    add=$(echo "$OUT" | section ADDITIONAL)
    expect_eq "glue A" "$(echo "$add" | awk '$1=="ns1.shop.example.com." && $4=="A" {print $5}')" \
        "192.0.2.200" || return 1
    expect_eq "glue AAAA" "$(echo "$add" | awk '$1=="ns2.shop.example.com." && $4=="AAAA" {print $5}')" \
        "2001:db8::200"
}
t_any() {
    OUT=$(q +norec example.com ANY)
    local ans rrsets
    expect_eq "status" "$(echo "$OUT" | status)" "NOERROR" || return 1
    ans=$(echo "$OUT" | section ANSWER)
    [ -n "$ans" ] || { WHY="empty answer"; return 1; }
    rrsets=$(echo "$ans" | awk '{print $1, $4}' | sort -u | wc -l)
    [ "$rrsets" -eq 1 ] || { WHY="$rrsets RRsets in answer (RFC 8482 wants one)"; return 1; }
}
t_case() {
    OUT=$(q +norec StAtIc.ExAmPlE.CoM A)
    expect_eq "question" "$(echo "$OUT" | awk '/^;; QUESTION SECTION:/ {getline; print $1}')" \
        ";StAtIc.ExAmPlE.CoM." || return 1
    expect_eq "A" "$(echo "$OUT" | section ANSWER | rdata A)" $'192.0.2.80\n192.0.2.81'
}
t_cname_chain() {
    OUT=$(q docs.example.com A)
    local ans; ans=$(echo "$OUT" | section ANSWER)
    expect_eq "CNAME" "$(echo "$ans" | rdata CNAME)" "static.example.com." || return 1
    expect_eq "A" "$(echo "$ans" | rdata A)" $'192.0.2.80\n192.0.2.81'
}
t_mx() {
    OUT=$(q example.com MX)
    expect_eq "MX" "$(echo "$OUT" | section ANSWER | rdata MX)" \
        $'10 mail.example.com.\n20 mail2.example.com.'
}
t_aaaa() {
    OUT=$(q +short ns2.example.com AAAA)
    expect_eq "AAAA" "$OUT" "2001:db8::53"
}
t_routed() {
    OUT=$(q +norec www.example.com A)
    local got; got=$(echo "$OUT" | section ANSWER | rdata A)
    [ -n "$got" ] || { WHY="empty answer"; return 1; }
    local ip
    for ip in $got; do
        case "$ip" in
            192.0.2.10|192.0.2.11|198.51.100.10|198.51.100.11|203.0.113.10|203.0.113.11) ;;
            *) WHY="$ip is not a www pool value"; return 1;;
        esac
    done
}
t_org() {
    OUT=$(q www.example.org A)
    local ans; ans=$(echo "$OUT" | section ANSWER)
    expect_eq "CNAME" "$(echo "$ans" | rdata CNAME)" "example.org." || return 1
    expect_eq "A" "$(echo "$ans" | rdata A)" "198.51.100.80"
}
t_health() {
    http_ok /health || { WHY="GET /health not 2xx"; return 1; }
}

check "static.example.com A -> 192.0.2.80, 192.0.2.81"           t_static_a
check "+norec answer has flags: qr aa (no ra)"                    t_aa_flags
check "name outside hosted zones -> REFUSED"                      t_refused
check "nosuch.example.com -> NXDOMAIN, SOA in authority"          t_nxdomain
check "mail.example.com AAAA -> NODATA, SOA in authority"         t_nodata
check "foo.static.example.com -> wildcard 192.0.2.99"             t_wildcard
check "+tcp static.example.com A"                                 t_tcp
check "EDNS(0) query gets OPT back"                               t_edns_opt
check "+edns=1 -> BADVERS"                                        t_badvers
check "www.shop.example.com -> referral (no aa, NS + glue)"       t_delegation
check "example.com ANY -> minimal answer (RFC 8482)"              t_any
check "0x20 mixed-case question echoed as sent"                   t_case
check "docs.example.com A -> CNAME chain to static"               t_cname_chain
check "example.com MX"                                            t_mx
check "ns2.example.com AAAA -> 2001:db8::53"                      t_aaaa
check "www.example.com A (routed) -> a pool value"                t_routed
check "www.example.org -> CNAME to apex 198.51.100.80"            t_org
check "GET /health"                                               t_health

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    FAILED=$((FAILED + 1)); echo "FAIL  server still running after the checks"
fi

echo "smoke: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
