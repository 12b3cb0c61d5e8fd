"""Incoming traffic (feature.network.incoming): the pod's connections
mirrored or stolen to a local app run by `podenv exec`, with HTTP filters,
port_mapping and listen_ports. The client namespace of the mini cluster
sends the traffic to the pod (10.213.0.2:80, whose own app answers
`pod-original`); the local app answers `local-app <path>` and prints one
JSON line per request it got, with the raw bytes."""
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import run
from test_unprivileged import USER, test_user, user_pod  # noqa: F401 (fixtures)

PY = "/usr/bin/python3"

# The local app: HTTP/1.1 with keep-alive ("http") or a TCP echo ("echo")
# on the given ports; one JSON line per request on stdout; GET /quit makes
# it answer and exit 0. "ready" is printed once every listen() returned.
APP = r'''
import json, os, socket, sys, threading
kind, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
family = socket.AF_INET6 if len(sys.argv) > 3 and sys.argv[3] == "v6" else socket.AF_INET
lock = threading.Lock()
def log(**kw):
    with lock:
        print(json.dumps(kw), flush=True)
def serve_http(c, port):
    buf = b""
    with c:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target = lines[0].decode().split(" ")[:2]
            clen = 0
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                if k.strip().lower() == b"content-length":
                    clen = int(v)
            while len(rest) < clen:
                d = c.recv(65536)
                if not d:
                    return
                rest += d
            raw, buf = head + b"\r\n\r\n" + rest[:clen], rest[clen:]
            log(port=port, method=method, path=target, raw=raw.hex())
            body = ("local-app " + target).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            if target == "/quit":
                os._exit(0)
def serve_echo(c, port):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            log(port=port, echo=len(d))
            c.sendall(d)
def accept(s, port):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_http if kind == "http" else serve_echo,
                         args=(c, port), daemon=True).start()
for p in ports:
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", p))
    s.listen(64)
    threading.Thread(target=accept, args=(s, p), daemon=True).start()
log(ready=ports)
threading.Event().wait()
'''

# The client, in the client namespace: sends raw requests over one
# connection and reads one HTTP response per request; prints the bodies.
CLIENT = r'''
import json, socket, sys
host, port, reqs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10
out = []
try:
    c = socket.create_connection((host, port), timeout=timeout)
    buf = b""
    for r in reqs:
        c.sendall(r.encode("latin-1"))
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                raise EOFError("closed")
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        clen = 0
        for l in head.split(b"\r\n")[1:]:
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v)
        while len(rest) < clen:
            d = c.recv(65536)
            if not d:
                raise EOFError("closed in body")
            rest += d
        out.append(rest[:clen].decode())
        buf = rest[clen:]
except Exception as e:
    out.append("error: %s" % e)
print(json.dumps(out))
'''


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def get(path, headers=()):
    h = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET {path} HTTP/1.1\r\nHost: bear\r\n{h}\r\n"


def ask(cluster, reqs, port=80, host=None, timeout=10):
    """Sends reqs (raw request strings) on one connection from the client
    namespace; returns the response bodies (or an "error: ..." last)."""
    r = cluster.in_netns("client", PY, "-c", CLIENT, host or cluster.pod_ip, str(port),
                         json.dumps(reqs), str(timeout), timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def pod_answers(cluster, deadline=2.0):
    """True when a request to the pod is answered by its own app within
    `deadline` seconds (polling)."""
    end = time.monotonic() + deadline
    while True:
        try:
            if ask(cluster, [get("/again")], timeout=0.5) == ["pod-original"]:
                return True
        except AssertionError:
            pass
        if time.monotonic() > end:
            return False
        time.sleep(0.1)


def redirect_rules(cluster):
    """The agent's redirect rules left in the pod's namespace (iptables and nft)."""
    left = []
    for tool in (["iptables-save"], ["ip6tables-save"], ["nft", "list", "ruleset"]):
        r = cluster.in_netns("pod", *tool)
        left += [l for l in r.stdout.splitlines() if "podenv" in l.lower()]
    return left


class App:
    """A local app under `podenv exec`: its stdout lines are collected by a
    thread; `wait_ready()` returns once it listens."""

    def __init__(self, cluster, build_dir, tmp_path, incoming, kind="http", ports="80",
                 family="v4", env=None, extra=None):
        cfg = {"feature": {"network": {"incoming": incoming}}}
        if extra:
            cfg.update(extra)
        self.cfg_path = os.path.join(str(tmp_path), f"cfg-{secrets.token_hex(3)}.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        e = dict(os.environ)
        e.setdefault("RUST_LOG", "podenv=info")
        e.update(env or {})
        self.p = subprocess.Popen(
            [podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f", self.cfg_path,
             "--", PY, "-c", APP, kind, ports, family],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp", env=e)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _read(f, put):
        for line in f:
            put(line)

    def wait_ready(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.p.poll() is not None:
                    break
                continue
            if '"ready"' in line:
                return
        raise AssertionError(f"the app did not start: rc={self.p.poll()} "
                             f"stderr={''.join(self.stderr)}")

    def requests(self, expect=0, wait=0.3):
        """The JSON lines the app printed so far: waits (up to 10 s) until
        there are `expect`, then `wait` more seconds for any extra."""
        out = []
        end = time.monotonic() + 10
        while len(out) < expect and time.monotonic() < end:
            try:
                out.append(json.loads(self.lines.get(timeout=0.1)))
            except queue.Empty:
                pass
        time.sleep(wait)
        while True:
            try:
                out.append(json.loads(self.lines.get_nowait()))
            except queue.Empty:
                return out

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.returncode

    def err(self):
        return "".join(self.stderr)


@pytest.fixture
def apps():
    started = []
    yield started
    for a in started:
        a.stop(signal.SIGKILL)


def start(apps, *args, **kw):
    a = App(*args, **kw)
    apps.append(a)
    a.wait_ready()
    return a


def test_steal_whole_port_then_the_pod_answers_again(cluster, build_dir, tmp_path, apps):
    """Steal every connection; after the app exits by itself the pod's own
    app answers within 2 s and no redirect rule is left."""
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"})
    assert ask(cluster, [get("/a"), get("/b?x=1")]) == ["local-app /a", "local-app /b?x=1"]
    assert [r["path"] for r in a.requests(2)] == ["/a", "/b?x=1"]
    assert ask(cluster, [get("/quit")]) == ["local-app /quit"]
    assert a.p.wait(timeout=20) == 0, a.err()
    assert pod_answers(cluster)
    assert redirect_rules(cluster) == []


def test_mirror_pod_answers_and_the_app_sees_identical_bytes(cluster, build_dir, tmp_path,
                                                            apps):
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "mirror"})
    reqs = [get("/m1", [("X-Trace", "abc")]),
            "POST /m2 HTTP/1.1\r\nHost: bear\r\nContent-Length: 5\r\n\r\nhello"]
    assert ask(cluster, reqs) == ["pod-original", "pod-original"]
    seen = a.requests(len(reqs))
    assert [bytes.fromhex(r["raw"]).decode() for r in seen] == reqs
    assert a.stop() in (0, 143)
    assert pod_answers(cluster)
    assert redirect_rules(cluster) == []


def test_header_filter_and_keep_alive_split(cluster, build_dir, tmp_path, apps):
    a = start(apps, cluster, build_dir, tmp_path,
              {"mode": "steal", "http_filter": {"header_filter": "x-user: alice"}})
    alice, bob = [("X-User", "alice")], [("X-User", "bob")]
    got = ask(cluster, [get("/1", alice), get("/2", bob), get("/3"), get("/4", alice),
                        get("/5", bob)])
    assert got == ["local-app /1", "pod-original", "pod-original", "local-app /4",
                   "pod-original"]
    assert [r["path"] for r in a.requests(2)] == ["/1", "/4"]


def test_mirror_with_a_filter_copies_only_matching_requests(cluster, build_dir, tmp_path,
                                                           apps):
    a = start(apps, cluster, build_dir, tmp_path,
              {"mode": "mirror", "http_filter": {"path_filter": "^/api/"}})
    got = ask(cluster, [get("/api/1"), get("/web"), get("/api/2?x")])
    assert got == ["pod-original"] * 3
    assert [r["path"] for r in a.requests(2)] == ["/api/1", "/api/2?x"]


def test_path_filter_negative_lookahead_leaves_health_checks(cluster, build_dir, tmp_path,
                                                            apps):
    start(apps, cluster, build_dir, tmp_path,
          {"mode": "steal", "http_filter": {"path_filter": "^(?!/health)"}})
    got = ask(cluster, [get("/health"), get("/api/x"), get("/healthz"), get("/v1?health")])
    assert got == ["pod-original", "local-app /api/x", "pod-original", "local-app /v1?health"]


def test_steal_over_ipv6_to_a_dual_stack_app(cluster, build_dir, tmp_path, apps):
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"}, family="v6")
    assert ask(cluster, [get("/six")], host=cluster.pod_ip6) == ["local-app /six"]
    assert ask(cluster, [get("/four")]) == ["local-app /four"]
    assert [r["path"] for r in a.requests(2)] == ["/six", "/four"]


def test_port_mapping(cluster, build_dir, tmp_path, apps):
    """The app listens on 8000; port_mapping makes it the pod's port 80."""
    a = start(apps, cluster, build_dir, tmp_path,
              {"mode": "steal", "port_mapping": [[8000, 80]]}, ports="8000")
    assert ask(cluster, [get("/mapped")]) == ["local-app /mapped"]
    assert [r["port"] for r in a.requests(1)] == [8000]


def test_non_http_on_a_port_the_pod_does_not_have(cluster, build_dir, tmp_path, apps):
    """A TCP echo on 7000 (the pod has nothing there): stolen whole, binary
    bytes both ways; nothing else breaks."""
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"}, kind="echo",
              ports="7000,7001")
    # 8 MiB each way, read while writing, far more than the credit windows
    # and socket buffers hold; then a half-close that must reach the app
    # (it closes on EOF, which ends the client's read)
    code = ("import socket, sys, threading\n"
            "c = socket.create_connection((sys.argv[1], 7000), timeout=20)\n"
            "data = bytes(range(256)) * 32768\n"
            "got = []\n"
            "def rd():\n"
            "    while True:\n"
            "        d = c.recv(65536)\n"
            "        if not d: break\n"
            "        got.append(d)\n"
            "t = threading.Thread(target=rd); t.start()\n"
            "c.sendall(data); c.shutdown(socket.SHUT_WR); t.join()\n"
            "print(b''.join(got) == data)\n")
    r = cluster.in_netns("client", PY, "-c", code, cluster.pod_ip, timeout=30)
    assert r.stdout.strip() == "True", r.stderr + a.err()
    assert ask(cluster, [get("/still-pod")]) == ["pod-original"]


def test_malformed_and_non_http_on_a_filtered_port_go_to_the_pod(cluster, build_dir, tmp_path,
                                                                apps):
    a = start(apps, cluster, build_dir, tmp_path,
              {"mode": "steal", "http_filter": {"header_filter": "x-user: alice"}})
    # a header line without a colon: not HTTP the splitter can vouch for
    bad = "GET /bad HTTP/1.1\r\nX-User: alice\r\nno colon here\r\n\r\n"
    assert ask(cluster, [bad]) == ["pod-original"]
    # not HTTP at all (podapp answers anything with two spaces)
    assert ask(cluster, ["HELLO WORLD FOO\r\n\r\n"]) == ["pod-original"]
    assert a.requests() == []
    assert a.p.poll() is None


@pytest.mark.parametrize("how", ["sigkill", "agent-killed"])
def test_pod_answers_again_after_podenv_or_the_link_dies(cluster, build_dir, tmp_path, apps,
                                                         how):
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"})
    assert ask(cluster, [get("/x")]) == ["local-app /x"]
    if how == "sigkill":
        os.kill(a.p.pid, signal.SIGKILL)
    else:
        agent = run(["pgrep", "-P", str(a.p.pid), "-f", "podenv-agent"]).stdout.split()
        assert agent, "no agent process"
        os.kill(int(agent[0]), signal.SIGKILL)
    a.p.wait(timeout=20)
    assert pod_answers(cluster)
    end = time.monotonic() + 5
    while redirect_rules(cluster) and time.monotonic() < end:
        time.sleep(0.1)
    assert redirect_rules(cluster) == []


def test_two_sessions_stealing_one_port(cluster, build_dir, tmp_path, apps):
    first = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"})
    second = App(cluster, build_dir, tmp_path, {"mode": "steal"})
    apps.append(second)
    assert second.p.wait(timeout=30) != 0
    assert "already stolen by another podenv session" in second.err()
    assert ask(cluster, [get("/first")]) == ["local-app /first"]
    assert [r["path"] for r in first.requests(1)] == ["/first"]


def test_mirror_is_shared_by_two_sessions(cluster, build_dir, tmp_path, apps):
    """Two podenv sessions (two agents) mirror the same port: both get
    every request, the pod still answers."""
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "mirror"})
    b = start(apps, cluster, build_dir, tmp_path, {"mode": "mirror"})
    assert ask(cluster, [get("/both")]) == ["pod-original"]
    assert [r["path"] for r in a.requests(1)] == ["/both"]
    assert [r["path"] for r in b.requests(1)] == ["/both"]


def test_ports_and_ignore_ports(cluster, build_dir, tmp_path, apps):
    start(apps, cluster, build_dir, tmp_path, {"mode": "steal", "ignore_ports": [80]})
    assert ask(cluster, [get("/ignored")]) == ["pod-original"]
    apps.pop().stop()
    start(apps, cluster, build_dir, tmp_path, {"mode": "steal", "ports": [7000]},
          ports="80,7000")
    assert ask(cluster, [get("/not-listed")]) == ["pod-original"]


def test_closing_the_listener_unsubscribes(cluster, build_dir, tmp_path, apps):
    """The app closes its socket: the pod answers again while podenv runs."""
    code = ("import socket, sys, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 80)); s.listen(8)\n"
            "print('listening', flush=True)\n"
            "sys.stdin.readline(); s.close()\n"
            "print('closed', flush=True)\n"
            "sys.stdin.readline()\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          write_cfg(tmp_path, {"mode": "steal"}), "--", PY, "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "listening\n"
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline() == "closed\n"
        assert pod_answers(cluster, deadline=3.0)
    finally:
        p.kill()
        p.wait()


def write_cfg(tmp_path, incoming, extra=None):
    cfg = {"feature": {"network": {"incoming": incoming}}}
    cfg.update(extra or {})
    path = os.path.join(str(tmp_path), f"cfg-{secrets.token_hex(3)}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def host_get(port, path):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(get(path).encode())
    buf = b""
    while b"local-app" not in buf:
        d = c.recv(65536)
        if not d:
            break
        buf += d
    c.close()
    return buf.decode(errors="replace").split("\r\n\r\n", 1)[-1]


def test_listen_ports_on_this_host(cluster, build_dir, tmp_path, apps):
    port = free_port()
    start(apps, cluster, build_dir, tmp_path, {"mode": "off", "listen_ports": [[80, port]]},
          family="v6")
    assert host_get(port, "/from-host") == "local-app /from-host"
    # mode off: the pod keeps its traffic
    assert ask(cluster, [get("/pod")]) == ["pod-original"]


def test_listen_before_subscription_is_never_early(cluster, build_dir, tmp_path, apps):
    """The app's listen() returns only once the agent redirects: the very
    first request after "ready" is stolen."""
    for _ in range(3):
        a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"})
        assert ask(cluster, [get("/first")]) == ["local-app /first"]
        apps.remove(a)
        a.stop()


def test_nftables(cluster, build_dir, tmp_path, apps):
    if run(["which", "nft"]).returncode != 0:
        pytest.skip("nft is not installed")
    a = start(apps, cluster, build_dir, tmp_path, {"mode": "steal"},
              extra={"agent": {"nftables": True}})
    r = cluster.in_netns("pod", "nft", "list", "ruleset")
    assert "podenv" in r.stdout, a.err()
    assert ask(cluster, [get("/nft")]) == ["local-app /nft"]
    a.stop()
    assert pod_answers(cluster)
    assert redirect_rules(cluster) == []


def test_listen_ports_without_root(build_dir, test_user, user_pod):
    """Unprivileged (a user namespace): the listen() watch works (no
    CAP_SYS_ADMIN on the host: no_new_privs where needed), the sockets of
    the app's namespace come from the helper, and listen_ports reaches the
    app. The user's own pod shares the host's network, where the agent may
    not redirect: the subscription fails with a message, the app runs."""
    import shlex
    port = free_port()
    cfg = os.path.join("/tmp", f"podenv-inc-{secrets.token_hex(3)}.json")
    with open(cfg, "w") as f:
        json.dump({"feature": {"network": {"incoming": {
            "mode": "steal", "listen_ports": [[8080, port]]}}}}, f)
    os.chmod(cfg, 0o644)
    cmd = (f"cd /tmp && RUST_LOG=podenv=info exec {podenv(build_dir)} exec -f {cfg} "
           f"-t pid/{user_pod} -- {PY} -c {shlex.quote(APP)} http 8080 v4")
    p = subprocess.Popen(["su", USER, "-s", "/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert '"ready"' in line, p.stderr.read() if p.poll() is not None else line
        assert host_get(port, "/unprivileged") == "local-app /unprivileged"
        assert p.poll() is None
    finally:
        # podenv is su's child (sh exec'ed it); the app and the agent die
        # with it (PR_SET_PDEATHSIG)
        run(["pkill", "-KILL", "-P", str(p.pid)])
        p.kill()
        p.wait(timeout=10)
        os.unlink(cfg)


def test_signals_during_listen_do_not_let_it_return_early(cluster, build_dir, tmp_path, apps):
    """A signal every millisecond while listen() waits for the agent (as Go's
    runtime preempts threads): the call is not interrupted and restarted
    (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV), so when it returns the port
    is already redirected and the first request is stolen."""
    code = ("import signal, socket, sys\n"
            "n = [0]\n"
            "def tick(*a): n[0] += 1\n"
            "signal.signal(signal.SIGALRM, tick)\n"
            "signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 80)); s.listen(8)\n"
            "signal.setitimer(signal.ITIMER_REAL, 0, 0)\n"
            "print('ready', n[0], flush=True)\n"
            "c, _ = s.accept(); c.recv(4096)\n"
            "c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nlocal!')\n"
            "c.close(); sys.stdin.readline()\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          write_cfg(tmp_path, {"mode": "steal"}), "--", PY, "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp")
    try:
        line = p.stdout.readline().split()
        assert line and line[0] == "ready", p.stderr.read() if p.poll() is not None else line
        assert int(line[1]) > 0  # signals did arrive while listen() waited
        assert ask(cluster, [get("/first")]) == ["local!"]
    finally:
        p.kill()
        p.wait()


def test_trace_records_each_listen_decision(cluster, build_dir, tmp_path, apps):
    trace = tmp_path / "trace.jsonl"
    code = ("import socket\n"
            "for p in (80, 8080, 9000):\n"
            "    s = socket.socket(); s.bind(('0.0.0.0', p)); s.listen(1)\n")
    r = subprocess.run([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                        write_cfg(tmp_path, {"mode": "steal", "ignore_ports": [8080],
                                             "http_filter": {"path_filter": "^/api"}}),
                        "--trace", str(trace), "--", PY, "-c", code],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                       cwd="/tmp")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in trace.read_text().splitlines()]
    listens = {l["port"]: l for l in lines if l["kind"] == "listen"}
    assert listens[80]["verdict"] == "steal" and listens[80]["filter"] == "path ^/api\n"
    assert listens[8080]["verdict"] == "local" and "ignore_ports" in listens[8080]["rule"]
    assert listens[9000]["verdict"] == "local" and "http_filter.ports" in listens[9000]["rule"]


def test_h2c_preface_on_a_filtered_port_passes_through(cluster, build_dir, tmp_path, apps):
    """HTTP/2 with prior knowledge cannot be split: it goes to the pod's app
    unchanged. (podapp, which speaks only HTTP/1.1, answers the preface's
    first line as a request and closes on its "SM" line, so only that
    first part is sent here.)"""
    a = start(apps, cluster, build_dir, tmp_path,
              {"mode": "steal", "http_filter": {"header_filter": "x-user: alice"}})
    assert ask(cluster, ["PRI * HTTP/2.0\r\n\r\n"]) == ["pod-original"]
    assert a.requests() == []


def test_ignore_localhost_leaves_a_loopback_server_alone(cluster, build_dir, tmp_path):
    code = ("import socket\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 80)); s.listen(1)\n"
            "print('ready', flush=True)\n"
            "import sys; sys.stdin.readline()\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          write_cfg(tmp_path, {"mode": "steal", "ignore_localhost": True}),
                          "--", PY, "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp", env=dict(os.environ, RUST_LOG="podenv=info"))
    try:
        assert p.stdout.readline() == "ready\n"
        assert ask(cluster, [get("/lo")]) == ["pod-original"]
    finally:
        p.kill()
        _, err = p.communicate(timeout=20)
    assert "ignore_localhost" in err


def test_a_restarted_server_keeps_the_port(cluster, build_dir, tmp_path):
    """The app closes its listener and listens again (a reload): the port
    is stolen again from its next listen() on."""
    code = ("import socket, sys\n"
            "for round in (1, 2):\n"
            "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "    s.bind(('0.0.0.0', 80)); s.listen(8)\n"
            "    print('ready', round, flush=True)\n"
            "    c, _ = s.accept(); c.recv(4096)\n"
            "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 7\\r\\n\\r\\nround-%d' % round)\n"
            "    c.close(); s.close()\n"
            "    sys.stdin.readline()\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          write_cfg(tmp_path, {"mode": "steal"}), "--", PY, "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "ready 1\n"
        assert ask(cluster, [get("/a")]) == ["round-1"]
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline() == "ready 2\n"
        assert ask(cluster, [get("/b")]) == ["round-2"]
    finally:
        p.kill()
        p.wait()


def test_steal_to_a_server_bound_to_loopback(cluster, build_dir, tmp_path):
    """ignore_localhost false (the default): a server on 127.0.0.1 gets the
    pod's traffic too, delivered on its loopback."""
    code = ("import socket, sys\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', 80)); s.listen(8)\n"
            "print('ready', flush=True)\n"
            "for _ in range(2):\n"
            "    c, _ = s.accept(); c.recv(4096)\n"
            "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nlo'); c.close()\n"
            "sys.stdin.readline()\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          write_cfg(tmp_path, {"mode": "steal"}), "--", PY, "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "ready\n"
        assert ask(cluster, [get("/1")]) == ["lo"]
        assert ask(cluster, [get("/2")]) == ["lo"]
    finally:
        p.kill()
        p.wait()
