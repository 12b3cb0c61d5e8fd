#!/bin/bash
# make demo: podenv against the local mini cluster (tests/cluster/README.md).
# Starts its own cluster instance ("demo"), shows what podenv sees of the
# pod, and takes the cluster down again, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build}")
export PODENV_BUILD=$BUILD PODENV_CLUSTER_ID=demo
CLUSTER=tests/cluster/cluster

bold() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
show() { printf '$ %s\n' "$*"; "$@"; }

trap '$CLUSTER down >/dev/null 2>&1 || true' EXIT
bold "Starting the mini cluster (namespaces: pod bear-pod, cluster services, client)"
$CLUSTER up >/dev/null
POD_PID=$($CLUSTER status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pod"]["pid"])')
echo "bear-pod runs as process $POD_PID in its own net, mount and UTS namespaces"

bold "The host's view, for comparison"
show hostname
show grep PRETTY_NAME /etc/os-release

bold "What podenv-agent sees of the pod (--inspect)"
show "$BUILD/podenv-agent" --pid "$POD_PID" --inspect

bold "podenv exec: a local shell command, the pod's files, env and hostname"
show "$BUILD/podenv" exec -t "pid/$POD_PID" -- sh -c \
	'echo "hostname: $(hostname)"; echo "--- /app/config.yaml (remote):"; head -4 /app/config.yaml;
	 echo "--- /etc/os-release (local by default):"; grep PRETTY_NAME /etc/os-release;
	 echo "--- env from the pod: DATABASE_USER=$DATABASE_USER MY_APP_COLOR=$MY_APP_COLOR";
	 echo "--- the pod'"'"'s own os-release at \$PODENV_ROOT:"; grep PRETTY_NAME $PODENV_ROOT/etc/os-release'

bold "A remote read and a local write (read mode: writes go to the local disk)"
DEMO_DIR=/srv/podenv-demo
mkdir -p "$DEMO_DIR" "/proc/$POD_PID/root$DEMO_DIR"
echo "written in the pod" > "/proc/$POD_PID/root$DEMO_DIR/note.txt"
show "$BUILD/podenv" exec -t "pid/$POD_PID" -- sh -c "cat $DEMO_DIR/note.txt; echo 'written by the app' > $DEMO_DIR/out.txt"
echo "on the host: $(cat $DEMO_DIR/out.txt)"
rm -rf "$DEMO_DIR"

bold "The network from the pod: its DNS (search domains) and its services"
show "$BUILD/podenv" exec -t "pid/$POD_PID" -- sh -c \
	'getent hosts db; curl -s http://api/hello-from-podenv; echo; grep -v "^#" /etc/resolv.conf'
echo "(the host itself cannot reach these: the cluster's addresses exist only in its namespaces)"

bold "Done: taking the cluster down"
