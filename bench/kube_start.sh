#!/bin/bash
# bench-title: podenv exec start-up through the Kubernetes API (issue 8): pod/bear-pod via the fake API server vs pid/ and native
# Time from start to the app having run (`podenv exec -t pod/bear-pod --
# true`) with the local fake cluster: kubeconfig, target lookup, agent Job
# (its "image" already pulled: the fake starts the local podenv-agent),
# waiting for it to be ready, the WebSocket port-forward, the handshake, the
# pod's context, the sandbox. Compared in the same run, interleaved over
# ROUNDS rounds (hyperfine -N), with `podenv exec -t pid/PID -- true` (the
# agent spawned locally) and native `true`. Target: < 1.5 s.
#
#   bench/kube_start.sh [BUILD_DIR (default build)]
#   env: ROUNDS (3), RUNS (10 per command and round), PODENV_CLUSTER_ID (kubestart),
#        KEEP=1 keeps the raw data dir.
#
# Starts its own mini-cluster instance and fake API server (tests/kube/);
# both are taken down at the end, also on failure. Needs root, hyperfine,
# openssl (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
B=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-10}
export PODENV_CLUSTER_ID=${PODENV_CLUSTER_ID:-kubestart}
export PODENV_BUILD=$B
export PODENV_CLUSTER_OWNER=$$

T=$(mktemp -d /tmp/podenv-bench-kube.XXXXXX)
FAKE_PID=
cleanup() {
	set +e
	if [ -n "$FAKE_PID" ]; then
		kill -TERM "$FAKE_PID" 2>/dev/null
		for _ in $(seq 150); do kill -0 "$FAKE_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$FAKE_PID" 2>/dev/null
	fi
	[ -f "$T/fake/cgroup.json" ] && /usr/bin/python3 "$REPO/tests/kube/fakeapi.py" --dir "$T/fake" --restore-cgroup
	(cd "$REPO" && tests/cluster/cluster down >/dev/null 2>&1)
	if [ "${KEEP:-0}" = 1 ]; then echo "raw data: $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE

make --no-print-directory O="$B" all >/dev/null
for t in hyperfine openssl; do
	command -v $t >/dev/null || { echo "bench/kube_start.sh: $t missing (make deps)" >&2; exit 1; }
done

tests/cluster/cluster up >/dev/null
P=$(tests/cluster/cluster status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pod"]["pid"])')

/usr/bin/python3 tests/kube/fakeapi.py --dir "$T/fake" --agent "$B/podenv-agent" --pod-pid "$P" \
	>"$T/fake.log" 2>&1 </dev/null &
FAKE_PID=$!
for _ in $(seq 300); do [ -f "$T/fake/info.json" ] && break; sleep 0.05; done
[ -f "$T/fake/info.json" ] || { cat "$T/fake.log" >&2; exit 1; }
export KUBECONFIG=$T/fake/kubeconfig-token.yaml
export HOME=$T
# The agent leaves 1 s after the launcher; its Job goes as soon as it ends.
echo '{"agent": {"communication_timeout": 1, "ttl": 0}}' >"$T/podenv.json"
cd "$T"

NATIVE="true"
PID_START="$B/podenv exec -t pid/$P -- true"
KUBE_START="$B/podenv exec -f $T/podenv.json -t pod/bear-pod -- true"
# one run to see that it works at all (and its error if not)
$KUBE_START || { echo "podenv exec -t pod/bear-pod failed" >&2; exit 1; }
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$T/start$r.json" \
		"$NATIVE" "$PID_START" "$KUBE_START" >"$T/hf.log" 2>&1 || { cat "$T/hf.log" >&2; exit 1; }
done
/usr/bin/python3 "$REPO/bench/pool.py" hyperfine 0=native 1=pid 2=kube -- "$T"/start[0-9]*.json >"$T/pooled"
JOBS=$(curl -s --cacert "$T/fake/pki/ca.crt" "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$T/fake/info.json")/fake/state" |
	/usr/bin/python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["received"] if r["resource"]=="jobs"))')

/usr/bin/python3 - "$T/pooled" "$ROUNDS" "$RUNS" "$P" "$LOAD" "$JOBS" "$B" <<'EOF'
import sys
pooled, rounds, runs, pid, load, jobs, b = sys.argv[1:]
m = {}
for line in open(pooled):
    label, n, mn, med = line.split()
    m[label] = (int(n), float(mn), float(med))
k, p, nat = m["kube"][2], m["pid"][2], m["native"][2]
ok = "met" if k < 1500 else "MISSED"
print(f"> pod/bear-pod via the API server: {k:.0f} ms to the app having run "
      f"(target < 1.5 s: {ok}); pid/ {p:.1f} ms; native {nat:.2f} ms")
print()
print("| start-up (`-- true`) | n | min ms | median ms | vs pid/ | target |")
print("|---|---|---|---|---|---|")
print(f"| native `true` | {m['native'][0]} | {m['native'][1]:.2f} | {nat:.2f} | | |")
print(f"| `podenv exec -t pid/PID` (local agent) | {m['pid'][0]} | {m['pid'][1]:.1f} | {p:.1f} | 1.00 | |")
print(f"| `podenv exec -t pod/bear-pod` (fake API server, Job, port-forward) | {m['kube'][0]} "
      f"| {m['kube'][1]:.0f} | {k:.0f} | {k / p:.1f}x | < 1500 ms: **{ok}** |")
print()
print(f"- commands (hyperfine -N, {rounds} rounds x {runs} runs, 1 warm-up, interleaved): "
      f"`true`; `{b}/podenv exec -t pid/{pid} -- true`; "
      f"`KUBECONFIG=fake/kubeconfig-token.yaml {b}/podenv exec -f podenv.json -t pod/bear-pod -- true` "
      f"with podenv.json `{{\"agent\": {{\"communication_timeout\": 1, \"ttl\": 0}}}}`")
print(f"- fake API server: tests/kube/fakeapi.py (TLS, bearer token) on loopback; each run "
      f"creates a Job ({jobs} in all), the fake starts {b}/podenv-agent for it (the image "
      f"\"already pulled\") and the launcher polls the agent pod (every 20 ms for the first second, then 100 ms) until ready")
print(f"- pod pid {pid}; load average before: {load}")
EOF
