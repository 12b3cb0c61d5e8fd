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

bold "Done: taking the cluster down"
