#!/bin/bash
# bench-title: network through podenv exec (issue 6): throughput, connection rate, added latency, DNS
# Network benchmarks of `podenv exec` (issue 6), each against the direct
# path from the pod's network namespace (the limit) and, where it applies,
# slirp4netns (a userspace-stack peer), in the same run, interleaved over
# ROUNDS rounds; medians and ratios.
#
#   bench/net.sh [BUILD_DIR (default build)]
#   env: ROUNDS (3), IPERF_SECS (5), WRK_SECS (5), PINGS (20000),
#        HTTP_CONNS (2000), DNS_SECS (5), PROFILE (1: one more podenv iperf3 run each for
#        CPU use, perf record and strace -c of the launcher),
#        PODENV_CLUSTER_ID (netbench), KEEP=1 keeps the raw data dir,
#        BUILD=0 uses BUILD_DIR as it is (no make: e.g. binaries built from
#        a `git archive` export while the working tree is being edited).
#
# What runs where (all clients are host binaries):
#   direct   nsenter --net=<pod netns> CLIENT        the limit
#   podenv   podenv exec -t pid/<pod> -- CLIENT      TUN -> launcher -> agent -> pod netns
#   slirp    ip netns exec <throwaway netns> CLIENT, whose default route is
#            a slirp4netns tap; slirp4netns itself runs in the pod's netns,
#            so its sockets leave from the pod like the agent's: the same
#            "userspace relay in front of the same server" (MTU 65520, its
#            best case, and its default 1500).
# Servers, in the cluster's services namespace: iperf3 -s, bench/tcpbench.c
# (echo for the 1-byte ping-pong; its httploop is the one-connection-per-
# request client whose time per connection includes the handshake), the cluster's HTTP service
# (10.213.0.11:80, services.py) and the cluster's dnsmasq, restarted with its
# own arguments plus ttl-{api,db,echo} records with a TTL of 3600 s (its
# host records have TTL 0, which podenv's DNS cache does not keep), so that
# the podenv DNS server is measured both uncached and cached.
#
# Starts its own mini-cluster instance; everything (cluster, iperf3, echo
# server, dnsmasq, slirp4netns, namespaces) is taken down at the end, also
# on failure. Needs root, iperf3, wrk, dnsperf, slirp4netns (make deps),
# perf and strace for PROFILE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
B=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-3}
IPERF_SECS=${IPERF_SECS:-5}
WRK_SECS=${WRK_SECS:-5}
PINGS=${PINGS:-20000}
DNS_SECS=${DNS_SECS:-5}
HTTP_CONNS=${HTTP_CONNS:-2000}
PROFILE=${PROFILE:-1}
export PODENV_CLUSTER_ID=${PODENV_CLUSTER_ID:-netbench}
export PODENV_BUILD=$B
export PODENV_CLUSTER_OWNER=$$ # `cluster reap` takes it down if we die hard
IPERF_PORT=5301
ECHO_PORT=9300 # tcpbench: sink on it, echo on +1
SLIRP_MTUS="65520 1500"
PY=/usr/bin/python3

T=$(mktemp -d /tmp/podenv-bench-net.XXXXXX)
PIDS=() # background processes we started, killed by pid
NETNS=()
LP= # a profiled podenv exec
cleanup() {
	set +e
	[ -n "$LP" ] && kill "$LP" 2>/dev/null && wait "$LP" 2>/dev/null
	[ -f "$T/iperf.pid" ] && kill "$(cat "$T/iperf.pid")" 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
	(cd "$REPO" && tests/cluster/cluster down >/dev/null 2>&1)
	if [ "${KEEP:-0}" = 1 ]; then echo "raw data: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE

[ "${BUILD:-1}" = 0 ] || make --no-print-directory O="$B" all >/dev/null
[ -x "$B/podenv" ] && [ -x "$B/podenv-agent" ] || { echo "bench/net.sh: no podenv in $B" >&2; exit 1; }
for t in iperf3 wrk dnsperf slirp4netns dig cc; do
	command -v $t >/dev/null || { echo "bench/net.sh: $t missing (make deps)" >&2; exit 1; }
done
if [ "$PROFILE" = 1 ]; then
	for t in perf strace; do command -v $t >/dev/null || { echo "bench/net.sh: $t missing (PROFILE=0 to skip)" >&2; exit 1; }; done
fi
cc -O2 -o "$T/tcpbench" bench/tcpbench.c

tests/cluster/cluster up >/dev/null
tests/cluster/cluster status >"$T/status.json"
eval "$($PY - "$T/status.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"P={s['pod']['pid']} PODNS={s['netns_paths']['pod']} SVCNS={s['netns_paths']['services']} "
      f"ECHO={s['services']['echo']['ipv4']} API={s['services']['api']['ipv4']} "
      f"DNS={s['dns']['server']} DNSMASQ={s['services']['pids']['dnsmasq']} STATE={s['state_dir']}")
EOF
)"
PODENV=$B/podenv
PE="$PODENV exec -t pid/$P --"
DIRECT="nsenter --net=$PODNS"
SVC="ip netns exec ${SVCNS##*/}"
cd "$T" # a neutral working directory (podenv keeps the working directory local)

# --- servers ------------------------------------------------------------------
# The cluster's dnsmasq again, with its own arguments plus records with a TTL.
tr '\0' '\n' <"/proc/$DNSMASQ/cmdline" >dnsmasq.args
[ "$(head -1 dnsmasq.args)" = dnsmasq ] || { echo "bench/net.sh: pid $DNSMASQ is not dnsmasq" >&2; exit 1; }
kill "$DNSMASQ"
for _ in $(seq 100); do kill -0 "$DNSMASQ" 2>/dev/null || break; sleep 0.05; done
mapfile -t DARGS <dnsmasq.args
for n in api db echo; do
	addrs=$(grep -- "^--host-record=$n\.default\." dnsmasq.args | cut -d= -f2- | cut -d, -f2-)
	DARGS+=("--host-record=ttl-$n.default.svc.cluster.local,$addrs,3600")
done
$SVC "${DARGS[@]}" >dnsmasq.out 2>&1 &
PIDS+=($!)
for n in api db echo; do
	for t in A AAAA; do
		echo "$n.default.svc.cluster.local $t" >>q_ttl0.txt
		echo "ttl-$n.default.svc.cluster.local $t" >>q_ttl3600.txt
	done
done
for _ in $(seq 100); do
	$DIRECT dig +time=1 +tries=1 +short @"$DNS" ttl-api.default.svc.cluster.local 2>/dev/null | grep -q . && break
	sleep 0.1
done

$SVC iperf3 -s -D -p $IPERF_PORT --pidfile "$T/iperf.pid"
$SVC "$T/tcpbench" serve $ECHO_PORT >serve.out &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready serve.out 2>/dev/null && [ -f iperf.pid ] && break; sleep 0.1; done

# slirp4netns, running in the pod's netns, in front of a throwaway netns each.
declare -A SLIRP
for m in $SLIRP_MTUS; do
	ns=nbslirp$$-$m
	ip netns add "$ns"
	NETNS+=("$ns")
	ip -n "$ns" link set lo up
	$DIRECT slirp4netns --configure --mtu=$m --netns-type=path "/run/netns/$ns" tap0 >"slirp$m.log" 2>&1 &
	PIDS+=($!)
	SLIRP[$m]=$!
	for _ in $(seq 100); do ip -n "$ns" -4 addr show tap0 2>/dev/null | grep -q 10.0.2.100 && break; sleep 0.05; done
done
slirp() { local m=$1; shift; ip netns exec "nbslirp$$-$m" "$@"; }

# Connection-per-request tests leave thousands of client-side TIME_WAIT
# sockets in the pod's netns (direct clients, the agent's and slirp4netns's
# connects) and the slirp netns; with the default tcp_tw_reuse=2 (loopback
# only) connect() then searches the port space (~3 ms each, ~200 conn/s after
# ~20k connections). Let these netns reuse TIME_WAIT ports, as busy clients
# do; podenv's app netns is fresh for every podenv exec.
for ns in "$PODNS" $(for m in $SLIRP_MTUS; do echo "/run/netns/nbslirp$$-$m"; done); do
	nsenter --net="$ns" sysctl -q -w net.ipv4.tcp_tw_reuse=1
done

# --- checks -------------------------------------------------------------------
echo "- load average before: $(cut -d" " -f1-3 /proc/loadavg)" >>"$T/head"
echo "- build $B (podenv $(stat -c %y "$B/podenv" | cut -d. -f1)$([ "${BUILD:-1}" = 0 ] && echo ", not rebuilt")), pod pid $P; iperf3 $ECHO:$IPERF_PORT, echo $ECHO:$((ECHO_PORT + 1)), HTTP $API:80, DNS $DNS; $ROUNDS rounds" >>"$T/head"
echo "- check: TTL of api A direct $($DIRECT sh -c "dig +noall +answer @$DNS api.default.svc.cluster.local" | awk '{print $2}'), ttl-api A direct $($DIRECT dig +noall +answer @"$DNS" ttl-api.default.svc.cluster.local | awk '{print $2}'); through podenv: $($PE sh -c 'dig +noall +answer @198.18.0.1 api.default.svc.cluster.local; dig +noall +answer @198.18.0.1 ttl-api.default.svc.cluster.local' | awk '{printf "%s %s  ", $1, $2}')" >>"$T/head"
echo "- check: HTTP direct '$($DIRECT curl -s -m 5 http://$API/x)', podenv '$($PE curl -s -m 5 http://$API/x)', slirp '$(slirp 65520 curl -s -m 5 http://$API/x)'" >>"$T/head"

# --- measurements ---------------------------------------------------------------
V=$T/values
iperf() { # LABEL PREFIX...: one iperf3 run, Gbit/s at the receiver + retransmits
	local label=$1
	shift
	"$@" iperf3 -c "$ECHO" -p $IPERF_PORT -t "$IPERF_SECS" -J >"$T/iperf.json" 2>"$T/iperf.err" ||
		{ echo "iperf3 ($label) failed:" >&2; cat "$T/iperf.err" "$T/iperf.json" >&2; exit 1; }
	$PY - "$T/iperf.json" "$label" >>"$V" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))["end"]
print(f"iperf_{sys.argv[2]}_gbps {e['sum_received']['bits_per_second'] / 1e9:.3f}")
print(f"iperf_{sys.argv[2]}_retr {e['sum_sent'].get('retransmits', 0)}")
EOF
}
wrkrun() { # LABEL KIND PREFIX...: KIND ka (keep-alive, 1 conn), close1 (Connection: close, 1 at a time), close16
	local label=$1 kind=$2 args
	shift 2
	case $kind in
	ka) args=(-t1 -c1) ;;
	close1) args=(-t1 -c1 -H "Connection: close") ;;
	close16) args=(-t2 -c16 -H "Connection: close") ;;
	esac
	"$@" wrk "${args[@]}" -d"$WRK_SECS" --latency "http://$API/" >"$T/wrk.out" 2>&1 ||
		{ echo "wrk ($label $kind) failed:" >&2; cat "$T/wrk.out" >&2; exit 1; }
	$PY - "$T/wrk.out" "${label}_$kind" >>"$V" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
k = sys.argv[2]
unit = {"us": 1, "ms": 1e3, "s": 1e6}
rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", t).group(1))
print(f"wrk_{k}_rps {rps:.1f}")
for p in ("50", "99"):
    m = re.search(rf"^\s*{p}%\s+([0-9.]+)(us|ms|s)\s*$", t, re.M)
    print(f"wrk_{k}_p{p}_us {float(m.group(1)) * unit[m.group(2)]:.1f}")
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
print(f"wrk_{k}_errors {sum(map(int, m.groups())) if m else 0}")
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"wrk_{k}_non2xx {m.group(1) if m else 0}")
EOF
}
pingpong() { # LABEL PREFIX...
	local label=$1
	shift
	"$@" "$T/tcpbench" pingpong "$ECHO" $((ECHO_PORT + 1)) "$PINGS" >"$T/pp.out"
	for k in p50_us mean_us p99_us; do
		echo "rtt_${label}_$k $(sed -n "s/.*$k=\([0-9.]*\).*/\1/p" "$T/pp.out")" >>"$V"
	done
}
httploop() { # LABEL PREFIX...: HTTP_CONNS new connections, one at a time
	local label=$1
	shift
	"$@" "$T/tcpbench" httploop "$API" 80 "$HTTP_CONNS" >"$T/hl.out"
	for k in conn_per_sec p50_us p99_us connect_p50_us connect_p99_us errors reset_before_data; do
		echo "http_${label}_$k $(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" "$T/hl.out")" >>"$V"
	done
	sed -n "s/.* top_error=\([a-z_0-9]*\).*/$label \1/p" "$T/hl.out" >>"$T/http_errors"
}
dnsperfrun() { # LABEL SERVER QFILE PREFIX...
	local label=$1 server=$2 q=$3
	shift 3
	local before
	before=$(stat -c %s "$STATE/dnsmasq-queries.log")
	"$@" dnsperf -s "$server" -d "$T/$q" -l "$DNS_SECS" >"$T/dnsperf.out" 2>&1 ||
		{ echo "dnsperf ($label) failed:" >&2; cat "$T/dnsperf.out" >&2; exit 1; }
	local after
	after=$(tail -c +$((before + 1)) "$STATE/dnsmasq-queries.log" | grep -c ' query\[' || true)
	$PY - "$T/dnsperf.out" "$label" "$after" >>"$V" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
k = sys.argv[2]
qps = float(re.search(r"Queries per second:\s*([0-9.]+)", t).group(1))
lat = float(re.search(r"Average Latency \(s\):\s*([0-9.]+)", t).group(1))
lost = re.search(r"Queries lost:\s*(\d+)", t).group(1)
print(f"dns_{k}_qps {qps:.0f}")
print(f"dns_{k}_lat_us {lat * 1e6:.0f}")
print(f"dns_{k}_lost {lost}")
print(f"dns_{k}_upstream {sys.argv[3]}")
EOF
}

for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	iperf direct $DIRECT
	iperf podenv $PE
	for m in $SLIRP_MTUS; do iperf slirp$m slirp $m; done
	for kind in ka close1 close16; do
		wrkrun direct $kind $DIRECT
		wrkrun podenv $kind $PE
		wrkrun slirp $kind slirp 65520
	done
	pingpong direct $DIRECT
	pingpong podenv $PE
	pingpong slirp slirp 65520
	httploop direct $DIRECT
	httploop podenv $PE
	httploop slirp slirp 65520
	dnsperfrun direct_ttl0 "$DNS" q_ttl0.txt $DIRECT
	dnsperfrun podenv_ttl0 198.18.0.1 q_ttl0.txt $PE
	dnsperfrun direct_ttl3600 "$DNS" q_ttl3600.txt $DIRECT
	dnsperfrun podenv_ttl3600 198.18.0.1 q_ttl3600.txt $PE
done

# --- where the time goes: CPU of each process, perf, strace -c ------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
if [ "$PROFILE" = 1 ]; then
	echo "profile runs" >&2
	HZ=$(getconf CLK_TCK)
	# 1. CPU use of launcher, agent, iperf3 client and server (no tracer attached).
	for what in cpu perf strace; do
		$PE iperf3 -c "$ECHO" -p $IPERF_PORT -t 10 -J >"$T/prof_$what.json" 2>&1 &
		LP=$!
		AP=
		for _ in $(seq 100); do AP=$(pgrep -P "$LP" -x podenv-agent || true); [ -n "$AP" ] && break; sleep 0.02; done
		sleep 2 # past start-up and slow start
		case $what in
		cpu)
			IP=$(cat "$T/iperf.pid")
			CP=$(pgrep -P "$LP" -x iperf3 || true)
			a0=$(cpu_ticks "$LP") b0=$(cpu_ticks "$AP") c0=$(cpu_ticks "$CP") d0=$(cpu_ticks "$IP") t0=$(date +%s.%N)
			sleep 5
			a1=$(cpu_ticks "$LP") b1=$(cpu_ticks "$AP") c1=$(cpu_ticks "$CP") d1=$(cpu_ticks "$IP") t1=$(date +%s.%N)
			$PY -c "import sys; a0,a1,b0,b1,c0,c1,d0,d1,t0,t1,hz=map(float,sys.argv[1:]); d=(t1-t0)*hz/100
print(f'launcher {(a1-a0)/d:.0f} %, agent {(b1-b0)/d:.0f} %, iperf3 client {(c1-c0)/d:.0f} %, iperf3 server {(d1-d0)/d:.0f} % of one CPU (5 s mid-run)')" \
				"$a0" "$a1" "$b0" "$b1" "$c0" "$c1" "$d0" "$d1" "$t0" "$t1" "$HZ" >"$T/prof_cpu.txt"
			;;
		perf)
			perf record -q -g -o "$T/perf.data" -p "$LP,$AP" -- sleep 5 >/dev/null 2>&1 || true
			;;
		strace)
			timeout -s INT 5 strace -c -f -p "$LP" -o "$T/strace_launcher.txt" 2>/dev/null || true
			;;
		esac
		wait "$LP" || true
		LP=
		$PY -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second']/1e9:.2f}\")" \
			"$T/prof_$what.json" >"$T/prof_${what}_gbps.txt" 2>/dev/null || echo "?" >"$T/prof_${what}_gbps.txt"
	done
	perf report -i "$T/perf.data" --stdio --no-children --sort comm,dso,sym 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -25 >"$T/perf_top.txt" || true
	perf report -i "$T/perf.data" --stdio --no-children --sort comm 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -5 >"$T/perf_comm.txt" || true
fi

/usr/bin/python3 "$REPO/bench/pool.py" values "$V" >"$T/pooled"

$PY - "$T" "$P" "$PODENV" "$ECHO" "$API" "$DNS" "$IPERF_SECS" "$WRK_SECS" "$PINGS" "$DNS_SECS" "$PROFILE" "$HTTP_CONNS" >"$T/report" <<'EOF'
import os, sys
T, P, PODENV, ECHO, API, DNS, IPERF_SECS, WRK_SECS, PINGS, DNS_SECS, PROFILE, HTTP_CONNS = sys.argv[1:]
rows = {}
for line in open(os.path.join(T, "pooled")):
    k, n, mn, med, mx = line.split()
    rows[k] = (int(n), float(mn), float(med), float(mx))
m = lambda k: rows[k][2]
rng = lambda k, f="{:.2f}": f"{f.format(rows[k][1])}–{f.format(rows[k][3])}"
def verdict(ok): return "**met**" if ok else "**MISSED**"

# Issue 6's questions first: outgoing connection rate and added round-trip latency.
hl = lambda path, k: m(f"http_{path}_{k}")
with open(os.path.join(T, "summary"), "w") as f:
    f.write(f"> iperf3 {m('iperf_podenv_gbps') / m('iperf_direct_gbps'):.2f} of direct "
            f"({m('iperf_podenv_gbps') / m('iperf_slirp65520_gbps'):.2f}× slirp4netns); new connections "
            f"{hl('podenv', 'conn_per_sec'):.0f}/s vs {hl('direct', 'conn_per_sec'):.0f}/s direct "
            f"({hl('podenv', 'conn_per_sec') / hl('direct', 'conn_per_sec'):.2f}); added RTT "
            f"{m('rtt_podenv_p50_us') - m('rtt_direct_p50_us'):+.0f} µs p50, {m('rtt_podenv_p99_us') - m('rtt_direct_p99_us'):+.0f} µs p99; "
            f"DNS {m('dns_podenv_ttl0_qps') / m('dns_direct_ttl0_qps'):.2f} of direct uncached\n")
print("\n## Issue 6 in short: outgoing connection rate and added round-trip latency (medians over the rounds)")
print("| measure | direct (pod netns) | podenv | podenv vs direct | slirp4netns --mtu=65520 | podenv vs slirp |")
print("|---|---|---|---|---|---|")
for k, desc, fmt in (("conn_per_sec", f"new connections per second, one at a time (`tcpbench httploop`: connect, GET with `Connection: close`, read to EOF, close; {HTTP_CONNS} per run)", "{:.0f}"),
                     ("p50_us", "time per connection p50 µs (handshake + request + response + close)", "{:.0f}"),
                     ("p99_us", "time per connection p99 µs", "{:.0f}"),
                     ("connect_p50_us", "connect() p50 µs", "{:.0f}"),
                     ("connect_p99_us", "connect() p99 µs", "{:.0f}")):
    d, p_, s_ = hl("direct", k), hl("podenv", k), hl("slirp", k)
    rel = (lambda a, b: f"{a / b:.2f}×") if k == "conn_per_sec" else (lambda a, b: f"{a - b:+.0f} µs")
    print(f"| {desc} | {fmt.format(d)} | {fmt.format(p_)} | {rel(p_, d)} | {fmt.format(s_)} | {rel(p_, s_)} |")
kinds = {}
for line in open(os.path.join(T, "http_errors")):
    path, kind = line.split()
    if kind != "none":
        kinds.setdefault(path, set()).add(kind)
fails = lambda path: (f"{rows[f'http_{path}_errors'][3]:.0f} of {HTTP_CONNS}"
                      + (f" ({', '.join(sorted(kinds[path]))})" if path in kinds else ""))
print(f"| failed connections, max per run (most common kind per run; not counted in the rate) | {fails('direct')} | {fails('podenv')} | | {fails('slirp')} | |")
for kind, desc in (("close1", "wrk, new connection per request, 1 at a time, requests/s"), ("close16", "wrk, new connection per request, 16 at a time, requests/s")):
    d, p_, s_ = m(f"wrk_direct_{kind}_rps"), m(f"wrk_podenv_{kind}_rps"), m(f"wrk_slirp_{kind}_rps")
    print(f"| {desc} | {d:.0f} | {p_:.0f} | {p_ / d:.2f}× | {s_:.0f} | {p_ / s_:.2f}× |")
for k, desc in (("p50_us", "1-byte TCP round trip p50 µs (`tcpbench pingpong`)"), ("p99_us", "1-byte TCP round trip p99 µs")):
    d, p_, s_ = m(f"rtt_direct_{k}"), m(f"rtt_podenv_{k}"), m(f"rtt_slirp_{k}")
    print(f"| {desc} | {d:.1f} | {p_:.1f} | {p_ - d:+.1f} µs | {s_:.1f} | {p_ - s_:+.1f} µs |")
for k, desc in (("p50_us", "HTTP request on a kept connection p50 µs (wrk `-c1`)"), ("p99_us", "HTTP request on a kept connection p99 µs")):
    d, p_, s_ = m(f"wrk_direct_ka_{k}"), m(f"wrk_podenv_ka_{k}"), m(f"wrk_slirp_ka_{k}")
    print(f"| {desc} | {d:.0f} | {p_:.0f} | {p_ - d:+.0f} µs | {s_:.0f} | {p_ - s_:+.0f} µs |")

print(f"\n## iperf3 TCP, {IPERF_SECS} s, client → iperf3 -s in the services namespace ({ECHO})")
print("| path | n | Gbit/s median (min–max) | retransmits (median) | ratio to direct | target |")
print("|---|---|---|---|---|---|")
d = m("iperf_direct_gbps")
print(f"| direct (`nsenter --net=<pod netns> iperf3 -c`) | {rows['iperf_direct_gbps'][0]} | {d:.2f} ({rng('iperf_direct_gbps')}) | {m('iperf_direct_retr'):.0f} | 1.00 | |")
p = m("iperf_podenv_gbps")
s = m("iperf_slirp65520_gbps")
print(f"| podenv (`podenv exec -t pid/{P} -- iperf3 -c`) | {rows['iperf_podenv_gbps'][0]} | {p:.2f} ({rng('iperf_podenv_gbps')}) | {m('iperf_podenv_retr'):.0f} | **{p / d:.2f}** | ≥ 0.30: {verdict(p / d >= 0.3)} |")
for mtu in ("65520", "1500"):
    k = f"iperf_slirp{mtu}_gbps"
    x = m(k)
    tgt = f"podenv faster: {verdict(p > x)} (×{p / x:.1f})"
    print(f"| slirp4netns --mtu={mtu} (in the pod netns) | {rows[k][0]} | {x:.2f} ({rng(k)}) | {m(f'iperf_slirp{mtu}_retr'):.0f} | {x / d:.2f} | {tgt} |")

print(f"\n## HTTP to the cluster service http://{API}/ (services.py), wrk {WRK_SECS} s")
print("| workload | path | n | requests/s median (min–max) | ratio to direct | latency p50 µs | p99 µs | added p50 µs | errors |")
print("|---|---|---|---|---|---|---|---|---|")
names = {"ka": "keep-alive, 1 connection (`-t1 -c1`)", "close1": "new connection per request, 1 at a time (`-t1 -c1 -H 'Connection: close'`)",
         "close16": "new connection per request, 16 at a time (`-t2 -c16 -H 'Connection: close'`)"}
for kind, desc in names.items():
    dd = m(f"wrk_direct_{kind}_rps")
    for path in ("direct", "podenv", "slirp"):
        k = f"wrk_{path}_{kind}"
        x = m(k + "_rps")
        add = m(k + "_p50_us") - m(f"wrk_direct_{kind}_p50_us")
        print(f"| {desc if path == 'direct' else ''} | {path} | {rows[k + '_rps'][0]} | {x:.0f} ({rng(k + '_rps', '{:.0f}')}) | {x / dd:.2f} | "
              f"{m(k + '_p50_us'):.0f} | {m(k + '_p99_us'):.0f} | {'' if path == 'direct' else f'{add:+.0f}'} | "
              f"{rows[k + '_errors'][3]:.0f} / {rows[k + '_non2xx'][3]:.0f} |")
print("\n(latency: wrk's, from sending the request to its response; a new connection's handshake is not in it. errors: max per run of socket errors / non-2xx)")

print(f"\n## 1-byte TCP ping-pong (bench/tcpbench.c pingpong, {PINGS} round trips, echo server in the services namespace)")
print("| path | n | p50 µs | mean µs | p99 µs | added p50 µs | added p99 µs |")
print("|---|---|---|---|---|---|---|")
for path in ("direct", "podenv", "slirp"):
    k = f"rtt_{path}_"
    add = "|" if path == "direct" else f"{m(k + 'p50_us') - m('rtt_direct_p50_us'):+.1f} | {m(k + 'p99_us') - m('rtt_direct_p99_us'):+.1f}"
    print(f"| {path if path != 'slirp' else 'slirp4netns --mtu=65520'} | {rows[k + 'p50_us'][0]} | {m(k + 'p50_us'):.1f} | {m(k + 'mean_us'):.1f} | {m(k + 'p99_us'):.1f} | {add} |")

print(f"\n## dnsperf, {DNS_SECS} s (1 client, 100 outstanding), api/db/echo A+AAAA")
print("| names | path | n | queries/s median (min–max) | avg latency µs | lost (max) | queries reaching dnsmasq per run | ratio to direct | target ≥ 0.50 |")
print("|---|---|---|---|---|---|---|---|---|")
for ttl, desc in (("ttl0", "`*.default.svc.cluster.local`, TTL 0 (not cached)"), ("ttl3600", "`ttl-*.default.svc.cluster.local`, TTL 3600 (cached by podenv)")):
    dd = m(f"dns_direct_{ttl}_qps")
    for path, srv in (("direct", DNS), ("podenv", "198.18.0.1")):
        k = f"dns_{path}_{ttl}"
        x = m(k + "_qps")
        tgt = "" if path == "direct" else verdict(x / dd >= 0.5)
        print(f"| {desc if path == 'direct' else ''} | {path} (`-s {srv}`) | {rows[k + '_qps'][0]} | {x:.0f} ({rng(k + '_qps', '{:.0f}')}) | "
              f"{m(k + '_lat_us'):.0f} | {rows[k + '_lost'][3]:.0f} | {m(k + '_upstream'):.0f} | {x / dd:.2f} | {tgt} |")

if PROFILE == "1":
    rd = lambda f: open(os.path.join(T, f)).read().strip() if os.path.exists(os.path.join(T, f)) else "(none)"
    print("\n## Where podenv's iperf3 time goes (extra runs, 10 s each)")
    print(f"- CPU, no tracer ({rd('prof_cpu_gbps.txt')} Gbit/s): {rd('prof_cpu.txt')}")
    print(f"- perf record -g of launcher + agent, 5 s ({rd('prof_perf_gbps.txt')} Gbit/s), by process:")
    print("```\n" + rd("perf_comm.txt") + "\n```")
    print("  top symbols (self):")
    print("```\n" + rd("perf_top.txt") + "\n```")
    st = rd("strace_launcher.txt").splitlines()
    print(f"- strace -c -f of the launcher, 5 s ({rd('prof_strace_gbps.txt')} Gbit/s under strace):")
    print("```\n" + "\n".join(st[:14]) + "\n```")
EOF
cat "$T/summary"
echo
cat "$T/head" "$T/report"
