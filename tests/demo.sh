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

bold "Incoming: steal the pod's requests that carry x-user: alice"
CLIENT_NS=$($CLUSTER status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["namespaces"]["client"])')
POD_IP=$($CLUSTER status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pod"]["ipv4"])')
INCOMING_CFG=$(mktemp /tmp/podenv-demo-XXXXXX.json)
INCOMING_LOG=$(mktemp /tmp/podenv-demo-XXXXXX.log)
cat > "$INCOMING_CFG" <<'JSON'
{"feature": {"network": {"incoming": {"mode": "steal",
  "http_filter": {"header_filter": "^x-user: alice$"}}}}}
JSON
cat "$INCOMING_CFG"
# A local HTTP server on the pod's port 80, under podenv: it sees only the
# requests the filter matches; the pod's own app keeps the others.
"$BUILD/podenv" exec -t "pid/$POD_PID" -f "$INCOMING_CFG" -- /usr/bin/python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"answered on this laptop\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("local server got:", self.requestline, "x-user:", self.headers.get("x-user"), flush=True)
s = http.server.HTTPServer(("0.0.0.0", 80), H)
print("local server listening on port 80", flush=True)
s.serve_forever()' >"$INCOMING_LOG" 2>&1 &
INCOMING_PID=$!
for _ in $(seq 100); do grep -q listening "$INCOMING_LOG" && break; sleep 0.1; done
in_client() { nsenter --net="/run/netns/$CLIENT_NS" -- "$@"; }
show in_client curl -s -H 'x-user: alice' "http://$POD_IP/orders"
show in_client curl -s -H 'x-user: bob' "http://$POD_IP/orders"; echo
show in_client curl -s "http://$POD_IP/health"; echo
kill -TERM "$INCOMING_PID" 2>/dev/null || true
wait "$INCOMING_PID" 2>/dev/null || true
echo "--- the local server's log:"
grep "local server" "$INCOMING_LOG"
echo "--- after podenv exits the pod answers alice itself again:"
show in_client curl -s -H 'x-user: alice' "http://$POD_IP/orders"; echo
rm -f "$INCOMING_CFG" "$INCOMING_LOG"

bold "Done: taking the cluster down"
