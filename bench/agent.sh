#!/bin/bash
# bench-title: agent and protocol (issue 4): 64 MiB read vs cat, stat round trips, TCP vs direct
# Agent and protocol benchmarks (issue 4), each against its native/direct
# baseline in the same run, interleaved over ROUNDS rounds; medians and ratios.
#
#   bench/agent.sh [BUILD_DIR (default build)]
#   env: ROUNDS (5), PODENV_CLUSTER_ID (bench), TCP_BYTES (1000000000),
#        PINGS (20000), STATS (100000), KEEP=1 keeps the raw data dir.
#
# Starts its own mini-cluster instance and takes it down at the end, also on
# failure. Needs root, hyperfine, cc.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-5}
TCP_BYTES=${TCP_BYTES:-1000000000}
PINGS=${PINGS:-20000}
STATS=${STATS:-100000}
export PODENV_CLUSTER_ID=${PODENV_CLUSTER_ID:-bench}
export PODENV_BUILD=$B
export PODENV_CLUSTER_OWNER=$$ # `cluster reap` takes it down if we die hard
PORT=9000 # sink; echo on PORT+1

T=$(mktemp -d /tmp/podenv-bench-agent.XXXXXX)
SERVE_PID=
HF_PID=
cleanup() {
	set +e
	[ -n "$HF_PID" ] && kill "$HF_PID" 2>/dev/null && wait "$HF_PID" 2>/dev/null
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	tests/cluster/cluster down >/dev/null 2>&1
	if [ "${KEEP:-0}" = 1 ]; then echo "raw data: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE

make --no-print-directory O="$B" all >/dev/null
command -v hyperfine >/dev/null || { echo "bench/agent.sh: hyperfine missing (make deps)" >&2; exit 1; }
cc -O2 -o "$T/tcpbench" bench/tcpbench.c

tests/cluster/cluster up >/dev/null
tests/cluster/cluster status >"$T/status.json"
eval "$(/usr/bin/python3 - "$T/status.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"P={s['pod']['pid']} PODNS={s['netns_paths']['pod']} SVCNS={s['netns_paths']['services']} "
      f"SVC={s['services']['echo']['ipv4']}")
EOF
)"
PODENV=$B/podenv
DBG="$PODENV debug agent -t pid/$P"

# The sink and echo server in the services namespace, shared by both sides.
ip netns exec "${SVCNS##*/}" "$T/tcpbench" serve $PORT >"$T/serve.out" &
SERVE_PID=$!
for _ in $(seq 50); do grep -q ready "$T/serve.out" 2>/dev/null && break; sleep 0.1; done

echo "- load average before: $(cut -d" " -f1-3 /proc/loadavg)" >>"$T/head"
echo "- build $B, pod pid $P, sink/echo $SVC:$PORT/$((PORT + 1)), $ROUNDS rounds" >>"$T/head"

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	# 1. 64 MiB read: whole commands (warm page cache), plus each side's
	#    fixed cost (exec of cat on an empty file; agent spawn + handshake).
	hyperfine -N --style none --warmup 2 --runs 10 --export-json "$T/read$r.json" \
		"cat /proc/$P/root/data/big.bin" "cat /dev/null" \
		"$DBG 'readall /data/big.bin'" "$DBG hostname" >"$T/hyperfine.log" 2>&1 &
	HF_PID=$! # in the background, so that a signal runs the clean-up at once
	wait $HF_PID || { cat "$T/hyperfine.log" >&2; exit 1; }
	HF_PID=
	for i in 1 2 3; do
		$DBG 'readall /data/big.bin' | field MBps | sed 's/^/readall_MBps /' >>"$T/values"
	done
	# 2. stat round trips, 1 and 16 in flight.
	$DBG "statloop /etc/hostname $STATS 1" | field ops_per_sec | sed 's/^/stat1_ops /' >>"$T/values"
	$DBG "statloop /etc/hostname $STATS 16" | field ops_per_sec | sed 's/^/stat16_ops /' >>"$T/values"
	# 3. TCP: direct from the pod's network namespace, then through the agent.
	nsenter --net="$PODNS" "$T/tcpbench" send "$SVC" $PORT "$TCP_BYTES" | field MBps |
		sed 's/^/tcp_direct_MBps /' >>"$T/values"
	$DBG "tcpsend $SVC $PORT $TCP_BYTES" | field MBps | sed 's/^/tcp_agent_MBps /' >>"$T/values"
	nsenter --net="$PODNS" "$T/tcpbench" pingpong "$SVC" $((PORT + 1)) "$PINGS" >"$T/pp"
	$DBG "pingpong $SVC $((PORT + 1)) $PINGS" >"$T/pa"
	for k in p50_us mean_us p99_us; do
		echo "rtt_direct_$k $(field $k <"$T/pp")" >>"$T/values"
		echo "rtt_agent_$k $(field $k <"$T/pa")" >>"$T/values"
	done
done

/usr/bin/python3 bench/pool.py hyperfine 0=cat_big 1=cat_null 2=dbg_readall 3=dbg_hostname \
	-- "$T"/read*.json >"$T/pooled"
/usr/bin/python3 bench/pool.py values "$T/values" >>"$T/pooled"

/usr/bin/python3 - "$T/pooled" "$P" "$DBG" "$TCP_BYTES" "$PINGS" "$STATS" >"$T/report" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    k, n, mn, med, *rest = line.split()
    rows[k] = (int(n), float(mn), float(med), float(rest[0]) if rest else None)
P, DBG, TCP_BYTES, PINGS, STATS = sys.argv[2:7]
m = lambda k: rows[k][2]
MiB64 = 64 * 1024 * 1024
def verdict(ok): return "**met**" if ok else "**MISSED**"

print("\n## 64 MiB read of /data/big.bin (warm page cache), whole commands, hyperfine -N")
print("| command | n | min ms | median ms | MB/s (median) |")
print("|---|---|---|---|---|")
for k, cmd in [("cat_big", f"cat /proc/{P}/root/data/big.bin"), ("cat_null", "cat /dev/null"),
               ("dbg_readall", f"{DBG} 'readall /data/big.bin'"), ("dbg_hostname", f"{DBG} hostname")]:
    n, mn, med, _ = rows[k]
    mbs = f"{MiB64 / med / 1e3:.0f}" if k in ("cat_big", "dbg_readall") else "–"
    print(f"| `{cmd}` | {n} | {mn:.2f} | {med:.2f} | {mbs} |")
nat_net = m("cat_big") - m("cat_null")
pod_net = m("dbg_readall") - m("dbg_hostname")
ra = rows["readall_MBps"]
nat_mbs = MiB64 / nat_net / 1e3
print()
print(f"- native transfer (cat big − cat empty): {nat_net:.2f} ms = {nat_mbs:.0f} MB/s")
print(f"- podenv transfer (readall − hostname, i.e. minus agent spawn+handshake {m('dbg_hostname'):.2f} ms): "
      f"{pod_net:.2f} ms = {MiB64 / pod_net / 1e3:.0f} MB/s")
print(f"- readall's own figure (first byte to release): median {ra[2]:.0f} MB/s (n={ra[0]}, {ra[1]:.0f}–{ra[3]:.0f})")
r1 = ra[2] / nat_mbs
r2 = m("cat_big") / m("dbg_readall")
print(f"- ratio readall MB/s / native MB/s: **{r1:.2f}** (target ≥ 0.40: {verdict(r1 >= 0.4)}); "
      f"transfer-only ratio {nat_net / pod_net:.2f}; whole commands (native ms / podenv ms) {r2:.2f}")

print(f"\n## stat round trips (`statloop /etc/hostname {STATS} K`)")
print("| in flight | n | min ops/s | median ops/s | max ops/s | target ≥ 20,000 |")
print("|---|---|---|---|---|---|")
for k, K in [("stat1_ops", 1), ("stat16_ops", 16)]:
    n, mn, med, mx = rows[k]
    print(f"| {K} | {n} | {mn:.0f} | {med:.0f} | {mx:.0f} | {verdict(med >= 20000)} |")
print(f"\n(1 in flight: {1e6 / m('stat1_ops'):.1f} µs per round trip)")

print(f"\n## TCP through the agent vs direct from the pod's netns (same sink/echo server)")
print("| measure | n | direct median | agent median | ratio / added | target |")
print("|---|---|---|---|---|---|")
d, a = m("tcp_direct_MBps"), m("tcp_agent_MBps")
print(f"| throughput {TCP_BYTES} B, MB/s | {rows['tcp_agent_MBps'][0]} | {d:.0f} | {a:.0f} | "
      f"{a / d:.2f} | ≥ 0.30: {verdict(a / d >= 0.3)} |")
for k in ("p50_us", "mean_us", "p99_us"):
    d, a = m("rtt_direct_" + k), m("rtt_agent_" + k)
    tgt = f"< 50 µs: {verdict(a - d < 50)}" if k == "p50_us" else ""
    print(f"| 1-byte RTT {k.replace('_us', '')} µs ({PINGS} round trips) | {rows['rtt_agent_' + k][0]} | "
          f"{d:.1f} | {a:.1f} | +{a - d:.1f} µs | {tgt} |")
with open(sys.argv[1].rsplit("/", 1)[0] + "/summary", "w") as f:
    f.write(f"> readall {r1:.2f} of native; stat {m('stat1_ops'):.0f} ops/s (1 in flight), {m('stat16_ops'):.0f} (16); "
            f"TCP {m('tcp_agent_MBps') / m('tcp_direct_MBps'):.2f} of direct; 1-byte RTT "
            f"+{m('rtt_agent_p50_us') - m('rtt_direct_p50_us'):.1f} µs p50, +{m('rtt_agent_p99_us') - m('rtt_direct_p99_us'):.1f} µs p99\n")
EOF
cat "$T/summary"
echo
cat "$T/head" "$T/report"
