#!/bin/bash
# bench-title: incoming steal (issue 7): HTTP requests/s and added latency of stolen traffic
# Stolen HTTP requests through podenv exec against the pod's own app served
# directly, in the same run, interleaved over ROUNDS rounds; medians and
# ratios.
#
#   bench/incoming.sh [BUILD_DIR (default build)]
#   env: ROUNDS (3), WRK_SECS (5), WRK_CONNS (32), WRK_THREADS (2),
#        PODENV_CLUSTER_ID (inbench), KEEP=1 keeps the raw data dir,
#        BUILD=0 uses BUILD_DIR as it is (no make).
#
# Both sides serve with the same program, the mini cluster's podapp (C,
# keep-alive, answers every request "200 pod-original"), so the ratio is
# the cost of the path, not of the server:
#   direct       wrk (client netns) -> pod 10.213.0.2:80 -> podapp in the pod
#   steal        wrk (client netns) -> pod:80 -> redirect -> agent -> link ->
#                launcher -> podapp -b local under `podenv exec`, on port 80
#   steal+filter the same with http_filter header_filter "^x-user: alice$"
#                (every request carries it: each is split, matched and sent
#                as a stream of its own)
# Throughput: wrk -t WRK_THREADS -c WRK_CONNS (keep-alive). Latency: wrk -t1
# -c1 --latency (one request at a time), p50 and p99, and the difference to
# direct (the added latency).
#
# Starts its own mini-cluster instance and takes it down at the end, also
# on failure. Needs root and wrk (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
B=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-3}
WRK_SECS=${WRK_SECS:-5}
WRK_CONNS=${WRK_CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
export PODENV_CLUSTER_ID=${PODENV_CLUSTER_ID:-inbench}
export PODENV_BUILD=$B
export PODENV_CLUSTER_OWNER=$$
PY=/usr/bin/python3

T=$(mktemp -d /tmp/podenv-bench-incoming.XXXXXX)
APP= # the podenv exec running
cleanup() {
	set +e
	stop_app
	(cd "$REPO" && tests/cluster/cluster down >/dev/null 2>&1)
	if [ "${KEEP:-0}" = 1 ]; then echo "raw data: $T"; else rm -rf "$T"; fi
}
stop_app() {
	if [ -n "$APP" ]; then
		kill -TERM "$APP" 2>/dev/null
		wait "$APP" 2>/dev/null
		APP=
	fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE

[ "${BUILD:-1}" = 0 ] || make --no-print-directory O="$B" all >/dev/null
[ -x "$B/podenv" ] && [ -x "$B/podenv-agent" ] || { echo "bench/incoming.sh: no podenv in $B" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/incoming.sh: wrk missing (make deps)" >&2; exit 1; }

tests/cluster/cluster up >&2
ST=$(tests/cluster/cluster status)
field() { $PY -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$ST" "$1"; }
POD_PID=$(field 'd["pod"]["pid"]')
POD_IP=$(field 'd["pod"]["ipv4"]')
CLIENT=/run/netns/$(field 'd["namespaces"]["client"]')
PODAPP=$B/tests/cluster/podapp
[ -x "$PODAPP" ] || PODAPP=$(field 'd["cache_dir"]')/podapp
[ -x "$PODAPP" ] || { echo "bench/incoming.sh: no podapp binary" >&2; exit 1; }
cp "$PODAPP" "$T/podapp"

start_app() { # $1: config JSON
	echo "$1" >"$T/cfg.json"
	"$B/podenv" exec -t "pid/$POD_PID" -f "$T/cfg.json" -- "$T/podapp" -p 80 -b local \
		>"$T/app.log" 2>&1 </dev/null &
	APP=$!
	# listen() returns once the agent redirects: then a request is stolen
	for _ in $(seq 200); do
		if [ "$(nsenter --net="$CLIENT" curl -s -m 2 -H 'x-user: alice' "http://$POD_IP/")" = local ]; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench/incoming.sh: the stolen app did not answer" >&2
	cat "$T/app.log" >&2
	exit 1
}

# wrk's output -> "rps p50_us p99_us"
parse() {
	$PY - "$1" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def us(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", t, re.M))
print(rps, us(p["50"]) if "50" in p else 0, us(p["99"]) if "99" in p else 0)
EOF
}

run_wrk() { # $1 name, $2 round, $3 header (or empty)
	local h=() out
	[ -n "$3" ] && h=(-H "$3")
	out=$T/$1.$2
	nsenter --net="$CLIENT" wrk -t "$WRK_THREADS" -c "$WRK_CONNS" -d "${WRK_SECS}s" "${h[@]}" \
		"http://$POD_IP/" >"$out.thr"
	nsenter --net="$CLIENT" wrk -t 1 -c 1 -d "${WRK_SECS}s" --latency "${h[@]}" \
		"http://$POD_IP/" >"$out.lat"
	local body
	body=$(nsenter --net="$CLIENT" curl -s -m 2 "${h[@]}" "http://$POD_IP/")
	echo "$(parse "$out.thr" | cut -d' ' -f1) $(parse "$out.lat" | cut -d' ' -f2-) $body" >>"$T/$1.all"
}

for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	run_wrk direct "$r" ""
	start_app '{"feature": {"network": {"incoming": "steal"}}}'
	run_wrk steal "$r" ""
	stop_app
	start_app '{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "^x-user: alice$"}}}}}'
	run_wrk filter "$r" "x-user: alice"
	stop_app
done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
$PY - "$T" "$ROUNDS" "$WRK_CONNS" "$WRK_THREADS" "$WRK_SECS" "$POD_PID" "$LOAD" <<'EOF'
import statistics, sys
T, rounds, conns, threads, secs, pod, load = sys.argv[1:]
def load_rows(name):
    rows = [l.split() for l in open(f"{T}/{name}.all")]
    bodies = {r[3] for r in rows}
    med = [statistics.median(float(r[i]) for r in rows) for i in range(3)]
    return med, bodies
d, _ = load_rows("direct")
s, _ = load_rows("steal")
f, _ = load_rows("filter")
ok = "met" if s[0] / d[0] >= 0.30 else "MISSED"
print(f"> stolen HTTP {s[0] / d[0]:.2f} of direct ({s[0]:.0f} vs {d[0]:.0f} req/s, target ≥ 0.30: "
      f"{ok}), +{s[1] - d[1]:.0f} µs p50 / +{s[2] - d[2]:.0f} µs p99; with a header filter "
      f"{f[0] / d[0]:.2f}")
print()
print(f"| path | req/s | of direct | target | p50 µs | p99 µs | added p50 µs | added p99 µs | answered by |")
print("|---|---|---|---|---|---|---|---|---|")
for name, label in (("direct", "direct: the pod's own podapp"),
                    ("steal", "stolen, whole port"),
                    ("filter", "stolen, header_filter")):
    m, bodies = load_rows(name)
    tgt = "" if name == "direct" else ("≥ 0.30: " + ("met" if m[0] / d[0] >= 0.30 else "MISSED"))
    print(f"| {label} | {m[0]:.0f} | {m[0] / d[0]:.2f} | {tgt} | {m[1]:.0f} | {m[2]:.0f} | "
          f"{m[1] - d[1]:.0f} | {m[2] - d[2]:.0f} | {', '.join(sorted(bodies))} |")
print()
print(f"- throughput: `wrk -t{threads} -c{conns} -d{secs}s http://10.213.0.2/` from the client "
      f"namespace (keep-alive); latency: `wrk -t1 -c1 -d{secs}s --latency` (one request at a time)")
print("- stolen: `podenv exec -t pid/POD -f CFG -- podapp -p 80 -b local` with "
      "`\"incoming\": \"steal\"`, and with `http_filter.header_filter \"^x-user: alice$\"` "
      "(wrk sends `x-user: alice` on every request); the same podapp binary serves both sides")
print(f"- {rounds} rounds, direct / stolen / filtered interleaved, medians; pod pid {pod}; "
      f"load average before {load}")
EOF
