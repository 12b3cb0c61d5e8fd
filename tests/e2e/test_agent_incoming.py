"""Incoming traffic at the agent, on the wire (docs/PROTOCOL.md §4.4): a
Python client speaks the protocol to the real podenv-agent aimed at the
mini cluster's bear-pod, subscribes the pod's port 80 (podapp answers
`pod-original`), and the client namespace sends traffic to 10.213.0.2:80.
Covers steal (whole connections and HTTP-filtered requests), mirror by
pass-through, non-HTTP and malformed input, two agents on one port, and
that no redirect rule outlives its session or agent (iptables and nft)."""
import ctypes
import os
import queue
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import ROOT, run, skip_if_sanitized
from agent_wire import HEADER, hello_frame, recv_exact

CLONE_NEWNET = 0x40000000
MIRROR, STEAL = 1, 2
STREAM_DATA, STREAM_WINDOW, STREAM_SHUTDOWN, STREAM_CLOSE = 0x0302, 0x0303, 0x0304, 0x0305
SUBSCRIBE, UNSUBSCRIBE, INCOMING = 0x0401, 0x0402, 0x0403
ERRNO_NAMES = {0: "ok", 2: "ENOENT", 22: "EINVAL", 95: "EOPNOTSUPP", 98: "EADDRINUSE"}

_libc = ctypes.CDLL(None, use_errno=True)


def socket_in_netns(path, family=socket.AF_INET):
    """A TCP socket created inside the network namespace at path (this
    thread enters it for the call only)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


class Stream:
    def __init__(self, link, sid, port, mode, remote, local):
        self.link, self.id, self.port, self.mode = link, sid, port, mode
        self.remote, self.local = remote, local
        self.data = bytearray()
        self.credit = link.agent_window  # bytes we may still send (PROTOCOL.md §5)
        self.eof = False
        self.closed = None  # the STREAM_CLOSE error once closed
        self.cond = threading.Condition()

    def wait(self, pred, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self), timeout):
                raise AssertionError(f"stream {self.id:#x}: timed out; {len(self.data)} bytes "
                                     f"{bytes(self.data[:200])!r}... eof={self.eof} "
                                     f"closed={self.closed}")

    def wait_data(self, n, timeout=10):
        self.wait(lambda s: len(s.data) >= n or s.closed is not None, timeout)
        return bytes(self.data)

    def send(self, data):
        data = memoryview(data)
        while data:
            with self.cond:
                if not self.cond.wait_for(lambda: self.credit > 0 or self.closed is not None, 30):
                    raise AssertionError(f"stream {self.id:#x}: no window from the agent")
                if self.closed is not None:
                    raise ConnectionResetError(f"stream closed ({self.closed})")
                n = min(len(data), 65536, self.credit)
                self.credit -= n
            self.link.send_frame(STREAM_DATA, 0, self.id, bytes(data[:n]))
            data = data[n:]

    def shutdown(self):
        self.link.send_frame(STREAM_SHUTDOWN, 0, self.id, b"")

    def close(self, error=0):
        self.link.send_frame(STREAM_CLOSE, 0, self.id, struct.pack("<I", error))


def parse_addr(p, off):
    fam = p[off]
    n = {0: 0, 4: 4, 6: 16}[fam]
    raw = p[off + 1:off + 1 + n]
    text = socket.inet_ntop(socket.AF_INET if fam == 4 else socket.AF_INET6, raw) if n else ""
    return text, off + 1 + n


class Link:
    """One session with a podenv-agent started with --stdio on a socketpair."""

    def __init__(self, build_dir, cluster, *args, wrap=(), agent=None):
        self.sock, child = socket.socketpair()
        self.log = open(f"/tmp/podenv-e2e-incoming-{secrets.token_hex(4)}.log", "w+")
        agent = agent or os.path.join(build_dir, "podenv-agent")
        self.proc = subprocess.Popen(
            [*wrap, agent, "--pid", str(cluster.pod_pid), "--stdio", "-l", "debug", *args],
            stdin=child, stdout=subprocess.DEVNULL, stderr=self.log)
        child.close()
        self.wlock = threading.Lock()
        self.responses = {}
        self.rcond = threading.Condition()
        self.incoming = queue.Queue()
        self.streams = {}
        self.next_id = 1
        self.sock.sendall(hello_frame(secrets.token_bytes(32)))
        t, _, _, payload = self.read_frame()
        assert t == 0x0002, f"no WELCOME: type {t:#x} {payload!r}"
        self.caps = struct.unpack_from("<Q", payload, 2)[0]
        self.agent_window = struct.unpack_from("<I", payload, 18)[0]
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()

    def read_frame(self):
        length, t, flags, ident = HEADER.unpack(recv_exact(self.sock, HEADER.size))
        return t, flags, ident, recv_exact(self.sock, length)

    def send_frame(self, t, flags, ident, payload):
        with self.wlock:
            self.sock.sendall(HEADER.pack(len(payload), t, flags, ident) + payload)

    def read_loop(self):
        try:
            while True:
                t, flags, ident, p = self.read_frame()
                if flags & 1:
                    with self.rcond:
                        self.responses[ident] = struct.unpack_from("<I", p)[0]
                        self.rcond.notify_all()
                elif t == INCOMING:
                    port, mode = struct.unpack_from("<HB", p)
                    remote, off = parse_addr(p, 3)
                    rport, = struct.unpack_from("<H", p, off)
                    local, off = parse_addr(p, off + 2)
                    lport, = struct.unpack_from("<H", p, off)
                    st = Stream(self, ident, port, mode, (remote, rport), (local, lport))
                    self.streams[ident] = st
                    self.incoming.put(st)
                elif t in (STREAM_DATA, STREAM_WINDOW, STREAM_SHUTDOWN, STREAM_CLOSE):
                    st = self.streams.get(ident)
                    if st is None:
                        continue
                    with st.cond:
                        if t == STREAM_DATA:
                            st.data += p
                        elif t == STREAM_WINDOW:
                            st.credit += struct.unpack_from("<I", p)[0]
                        elif t == STREAM_SHUTDOWN:
                            st.eof = True
                        else:
                            st.closed = struct.unpack_from("<I", p)[0]
                        st.cond.notify_all()
                    if t == STREAM_DATA and p:
                        self.send_frame(STREAM_WINDOW, 0, ident, struct.pack("<I", len(p)))
                elif t == 0x0004:  # PING
                    self.send_frame(0x0005, 0, 0, p)
        except (EOFError, OSError):
            with self.rcond:
                self.responses["eof"] = True
                self.rcond.notify_all()

    def request(self, t, payload):
        rid = self.next_id
        self.next_id += 1
        self.send_frame(t, 0, rid, payload)
        with self.rcond:
            assert self.rcond.wait_for(lambda: rid in self.responses or "eof" in self.responses,
                                       15), "no response"
            assert rid in self.responses, "agent closed the session"
            return ERRNO_NAMES.get(self.responses[rid], self.responses[rid])

    def subscribe(self, port, mode, filt=""):
        f = filt.encode()
        return self.request(SUBSCRIBE, struct.pack("<HBI", port, mode, len(f)) + f + b"\0")

    def unsubscribe(self, port):
        return self.request(UNSUBSCRIBE, struct.pack("<H", port))

    def next_incoming(self, timeout=10):
        return self.incoming.get(timeout=timeout)

    def no_incoming(self):
        return self.incoming.empty()

    def agent_log(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        """Ends the session the way a launcher that exits does."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def links(build_dir, cluster):
    """Makes Links; every one is closed and the pod left without any rule."""
    made = []

    def make(*args, wrap=(), agent=None):
        link = Link(build_dir, cluster, *args, wrap=wrap, agent=agent)
        made.append(link)
        return link

    yield make
    for link in made:
        if link.proc.poll() is None:
            link.close()
    deadline = time.monotonic() + 3
    while rules(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = rules(cluster)
    if left:
        remove_all_rules(cluster)
    assert not left, f"rules left behind: {left}"


def rules(cluster):
    """Every podenv redirect rule or table in the pod's namespace."""
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        r = cluster.in_netns("pod", tool, "-t", "nat")
        found += [l for l in r.stdout.splitlines() if "PODENV-" in l]
    r = cluster.in_netns("pod", "nft", "list", "tables")
    found += [l for l in r.stdout.splitlines() if "podenv_" in l]
    return found


def remove_all_rules(cluster):
    for tool in ("iptables", "ip6tables"):
        save = cluster.in_netns("pod", tool + "-save", "-t", "nat").stdout
        lines = ["*nat"]
        lines += ["-D" + l[2:] for l in save.splitlines() if l.startswith("-A ") and "-j PODENV-" in l]
        chains = [l[1:].split()[0] for l in save.splitlines() if l.startswith(":PODENV-")]
        lines += [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains] + ["COMMIT", ""]
        cluster.in_netns("pod", tool + "-restore", "--noflush", input="\n".join(lines))
    for l in cluster.in_netns("pod", "nft", "list", "tables").stdout.splitlines():
        if "podenv_" in l:
            cluster.in_netns("pod", "nft", "delete", *l.split()[1:])


def client_conn(cluster, port=80, v6=False, timeout=5):
    s = socket_in_netns(cluster.netns_path("client"), socket.AF_INET6 if v6 else socket.AF_INET)
    s.settimeout(timeout)
    s.connect((cluster.pod_ip6 if v6 else cluster.pod_ip, port))
    return s


def http_get(path="/", headers=(), method="GET", body=b""):
    h = "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body:
        h += f"Content-Length: {len(body)}\r\n"
    return f"{method} {path} HTTP/1.1\r\nHost: bear-pod\r\n{h}\r\n".encode() + body


_unread = {}  # socket -> bytes received past the last response read


def read_response(s):
    """One HTTP/1.1 response with a Content-Length body: (status, body).
    Bytes of pipelined responses after it wait for the next call."""
    data = _unread.pop(s, b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError(f"closed before a response head: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed inside a body")
        rest += chunk
    if len(rest) > n:
        _unread[s] = rest[n:]
    return int(head.split()[1]), rest[:n]


def local_response(body, extra=""):
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_caps_advertised(links):
    link = links()
    assert link.caps & (1 << 5) and link.caps & (1 << 6)


def test_steal_whole_port(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL) == "ok"
    assert any("PODENV-" in r for r in rules(cluster))
    c = client_conn(cluster)
    c.sendall(http_get("/stolen"))
    st = link.next_incoming()
    assert st.mode == STEAL and st.port == 80
    assert st.remote[0] == cluster.client_ip and st.local == (cluster.pod_ip, 80)
    req = st.wait_data(len(http_get("/stolen")))
    assert req == http_get("/stolen")
    st.send(local_response(b"local-app"))
    assert read_response(c) == (200, b"local-app")
    # the same connection, a second request: the same stream
    c.sendall(http_get("/again"))
    st.wait_data(len(req) + len(http_get("/again")))
    st.send(local_response(b"again"))
    assert read_response(c) == (200, b"again")
    c.shutdown(socket.SHUT_WR)
    st.wait(lambda s: s.eof)
    st.shutdown()
    assert c.recv(1) == b""
    c.close()
    # IPv6 too
    c = client_conn(cluster, v6=True)
    c.sendall(http_get("/v6"))
    st = link.next_incoming()
    assert st.local == (cluster.pod_ip6, 80)
    st.wait_data(len(http_get("/v6")))
    st.send(local_response(b"six"))
    assert read_response(c) == (200, b"six")
    c.close()


def test_session_end_gives_the_port_back(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL) == "ok"
    link.close()
    assert not rules(cluster)
    c = client_conn(cluster)
    c.sendall(http_get("/"))
    assert read_response(c) == (200, b"pod-original")
    c.close()


def test_unsubscribe_removes_the_rule(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL) == "ok"
    assert link.subscribe(80, STEAL) == "EADDRINUSE"
    assert link.unsubscribe(80) == "ok"
    assert link.unsubscribe(80) == "ENOENT"
    assert not rules(cluster)
    c = client_conn(cluster)
    c.sendall(http_get("/"))
    assert read_response(c) == (200, b"pod-original")
    c.close()


def expect_pod(c, path="/"):
    c.sendall(http_get(path))
    assert read_response(c) == (200, b"pod-original")


def test_mirror_copies_and_pod_still_answers(cluster, links):
    link = links()
    assert link.subscribe(80, MIRROR) == "ok"
    c = client_conn(cluster)
    reqs = [http_get("/one", [("X-Test", "1")]), http_get("/two", method="POST", body=b"x" * 5000)]
    for r in reqs:
        c.sendall(r)
        assert read_response(c) == (200, b"pod-original")
    st = link.next_incoming()
    assert st.mode == MIRROR and st.port == 80 and st.local == (cluster.pod_ip, 80)
    assert st.wait_data(sum(map(len, reqs))) == b"".join(reqs)
    # the launcher's answers on a mirror stream are discarded
    st.send(local_response(b"ignored"))
    c.shutdown(socket.SHUT_WR)
    assert c.recv(100) == b""
    st.wait(lambda s: s.eof)
    c.close()
    # two mirror sessions share the port (one agent with --listen would too;
    # here a second session of another agent is refused nothing)
    assert link.unsubscribe(80) == "ok"


def test_mirror_with_filter_copies_only_matches(cluster, links):
    link = links()
    assert link.subscribe(80, MIRROR, "header ^x-user: alice$\n") == "ok"
    c = client_conn(cluster)
    a, b = http_get("/a", [("X-User", "alice")]), http_get("/b", [("X-User", "bob")])
    for r in (b, a, b, a):
        c.sendall(r)
        assert read_response(c) == (200, b"pod-original")
    st = link.next_incoming()
    assert st.wait_data(2 * len(a)) == a + a
    c.close()
    st.wait(lambda s: s.eof)
    assert bytes(st.data) == a + a


def next_request(st, start, timeout=10):
    """The whole request at st.data[start:] (head and Content-Length body),
    once it is there; None if the stream closes first."""
    def complete(s):
        if s.closed is not None:
            return True
        head, sep, _ = bytes(s.data[start:]).partition(b"\r\n\r\n")
        if not sep:
            return False
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        return len(s.data) - start >= len(head) + 4 + (int(m.group(1)) if m else 0)
    st.wait(complete, timeout)
    data = bytes(st.data[start:])
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    if len(rest) < n:
        return None
    return head + sep + rest[:n]


def serve_stolen(link, body_for):
    """Answers stolen requests in threads, as a kept-alive local app: each
    stream carries one connection's matching requests, one at a time;
    body_for(request bytes) gives the local app's body."""
    stop = threading.Event()
    seen = []

    def one(st):
        pos = 0
        while not stop.is_set():
            try:
                req = next_request(st, pos, timeout=0.5)
            except AssertionError:
                continue  # no request yet: the test may be over (stop)
            if req is None:
                return
            pos += len(req)
            seen.append(req)
            try:
                st.send(local_response(body_for(req)))
            except (ConnectionResetError, OSError):
                return

    def loop():
        while not stop.is_set():
            try:
                st = link.next_incoming(timeout=0.2)
            except queue.Empty:
                continue
            threading.Thread(target=one, args=(st,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return stop, seen


def test_steal_with_header_filter(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL, "header ^x-user: alice$\n") == "ok"
    stop, seen = serve_stolen(link, lambda req: b"local:" + req.split(b" ")[1])
    try:
        c = client_conn(cluster)
        # keep-alive, alternating: each request goes its own way, in order
        for i in range(6):
            user = "alice" if i % 2 else "bob"
            c.sendall(http_get(f"/r{i}", [("X-User", user)]))
            want = f"local:/r{i}".encode() if user == "alice" else b"pod-original"
            assert read_response(c) == (200, want), i
        # pipelined: three requests in one write, answered in order
        c.sendall(http_get("/p1", [("X-User", "alice")]) + http_get("/p2") +
                  http_get("/p3", [("x-user", "ALICE")]))
        assert read_response(c) == (200, b"local:/p1")
        assert read_response(c) == (200, b"pod-original")
        assert read_response(c) == (200, b"local:/p3")
        c.close()
    finally:
        stop.set()
    assert [r.split(b" ")[1] for r in seen] == [b"/r1", b"/r3", b"/r5", b"/p1", b"/p3"]
    assert seen[0] == http_get("/r1", [("X-User", "alice")])  # exactly that request's bytes


def test_steal_with_path_filter_negative_lookahead(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL, "path ^(?!/health)\n") == "ok"
    stop, seen = serve_stolen(link, lambda req: b"local")
    try:
        c = client_conn(cluster)
        for path, want in (("/health", b"pod-original"), ("/api", b"local"),
                           ("/healthz", b"pod-original"), ("/x?y=/health", b"local")):
            c.sendall(http_get(path))
            assert read_response(c) == (200, want), path
        # a body goes with its request
        c.sendall(http_get("/upload", method="POST", body=b"b" * 100000))
        assert read_response(c) == (200, b"local")
        c.close()
    finally:
        stop.set()
    assert seen[-1].endswith(b"b" * 100000)


def test_non_http_and_malformed_go_to_the_pod(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL, "header ^x-user: alice$\n") == "ok"
    # not HTTP at all: podapp sees the bytes (and closes on garbage)
    c = client_conn(cluster)
    c.sendall(b"\x16\x03\x01 binary hello\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    c.recv(1000)
    c.close()
    # malformed: a bare LF inside the head, with the filter's header
    c = client_conn(cluster)
    c.sendall(b"GET /bad HTTP/1.1\r\nX-User: alice\nHost: x\r\n\r\n")
    assert read_response(c) == (200, b"pod-original")  # podapp takes bare LFs
    c.close()
    # HTTP/2 prior knowledge: passes through unmatched
    c = client_conn(cluster)
    c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    c.recv(1000)
    c.close()
    assert link.no_incoming()
    log = link.agent_log()
    assert "not a request line" in log and "bare LF" in log and "HTTP/2 preface" in log, log
    # the port still works
    c = client_conn(cluster)
    expect_pod(c)
    c.close()


def test_second_agent_cannot_steal_the_same_port(cluster, links):
    first = links()
    second = links()
    assert first.subscribe(80, STEAL) == "ok"
    assert second.subscribe(80, STEAL) == "EADDRINUSE"
    assert "already stolen by another podenv agent" in second.agent_log()
    assert second.subscribe(80, MIRROR) == "ok"  # mirror can be shared
    first.close()
    assert second.unsubscribe(80) == "ok"
    assert second.subscribe(80, STEAL) == "ok"  # free again


def wait_pod_answers(cluster, within):
    deadline = time.monotonic() + within
    while True:
        try:
            c = client_conn(cluster, timeout=0.5)
            c.sendall(http_get("/"))
            got = read_response(c)
            c.close()
            if got == (200, b"pod-original"):
                return time.monotonic()
        except (OSError, EOFError):
            pass
        assert time.monotonic() < deadline, "the pod did not answer by itself in time"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_sigkill_guard_removes_rules(cluster, links, backend):
    link = links(*(["--nftables"] if backend == "nftables" else []))
    assert link.subscribe(80, STEAL) == "ok"
    assert rules(cluster)
    if backend == "nftables":
        assert any("podenv_" in r for r in rules(cluster))
    t = time.monotonic()
    link.proc.send_signal(signal.SIGKILL)
    link.proc.wait()
    wait_pod_answers(cluster, 2)
    while rules(cluster):
        assert time.monotonic() - t < 2, rules(cluster)
        time.sleep(0.02)


def test_link_dies_pod_answers(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL) == "ok"
    link.sock.close()  # the launcher vanishes without a goodbye
    t = time.monotonic()
    wait_pod_answers(cluster, 2)
    while rules(cluster):
        assert time.monotonic() - t < 2
        time.sleep(0.02)


def test_stale_rules_are_removed_at_start(cluster, links):
    # rules as a killed agent (and its killed guard) would leave them
    stale = "0badc0de"
    cluster.in_netns("pod", "iptables-restore", "--noflush", check=True, input=(
        f"*nat\n:PODENV-{stale}-PRE - [0:0]\n"
        f"-I PREROUTING 1 -j PODENV-{stale}-PRE\n"
        f"-A PODENV-{stale}-PRE -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 1\nCOMMIT\n"))
    cluster.in_netns("pod", "nft", "add", "table", "inet", f"podenv_{stale}", check=True)
    assert len(rules(cluster)) >= 3
    link = links()
    assert link.subscribe(8080, MIRROR) == "ok"
    # the agent's background cleaner and its first SUBSCRIBE both look;
    # whichever gets there first removes them
    deadline = time.monotonic() + 2
    while any(stale in r for r in rules(cluster)):
        assert time.monotonic() < deadline, rules(cluster)
        time.sleep(0.02)
    assert f"removed stale redirect rules of agent {stale}" in link.agent_log()
    wait_pod_answers(cluster, 2)  # port 80 is the pod's again


def test_nftables_backend_steals_and_cleans_up(cluster, links):
    link = links("--nftables")
    assert link.subscribe(80, STEAL) == "ok"
    r = cluster.in_netns("pod", "nft", "list", "ruleset").stdout
    assert "redirect to :" in r and "podenv_" in r
    c = client_conn(cluster)
    c.sendall(http_get("/nft"))
    st = link.next_incoming()
    st.wait_data(len(http_get("/nft")))
    st.send(local_response(b"via-nft"))
    assert read_response(c) == (200, b"via-nft")
    c.close()
    assert link.unsubscribe(80) == "ok"
    assert not rules(cluster)


def test_flush_connections_resets_established(cluster, links):
    old = client_conn(cluster)
    expect_pod(old)  # established before the redirect
    link = links("--flush-connections")
    assert link.subscribe(80, STEAL) == "ok"
    assert "reset 1 established connection" in link.agent_log()
    with pytest.raises((ConnectionResetError, EOFError, BrokenPipeError)):
        old.sendall(http_get("/"))
        read_response(old)
    old.close()
    c = client_conn(cluster)  # a new connection is stolen
    c.sendall(http_get("/new"))
    st = link.next_incoming()
    assert st.wait_data(len(http_get("/new"))) == http_get("/new")
    c.close()


def test_bad_subscribe_requests(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL, "header (unclosed\n") == "EINVAL"
    assert link.subscribe(80, STEAL, "nonsense\n") == "EINVAL"
    assert link.subscribe(0, STEAL) == "EINVAL"
    # a port nothing listens on in the pod: fine, no traffic
    assert link.subscribe(81, STEAL, "path ^/\n") == "ok"
    assert link.subscribe(82, MIRROR) == "ok"
    assert rules(cluster)
    link.close()
    assert not rules(cluster)


def test_stolen_response_framings(cluster, links):
    """One stream per client connection carries its matching requests; the
    local app's responses may be chunked, close-delimited, or say
    Connection: close; interim 100 responses come first; HEAD has no body."""
    link = links()
    assert link.subscribe(80, STEAL, "header ^x-user: alice$\n") == "ok"
    alice = [("X-User", "alice")]
    c = client_conn(cluster)
    # chunked, then the pod on the same connection
    c.sendall(http_get("/chunked", alice))
    st = link.next_incoming()
    sent = http_get("/chunked", alice)
    assert st.wait_data(len(sent)) == sent
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    st.send(chunked[:30])
    st.send(chunked[30:])
    got = b""
    while not got.endswith(b"0\r\n\r\n"):
        got += c.recv(1000)
    assert got == chunked
    expect_pod(c)
    # HEAD: no body whatever Content-Length says; the same stream
    c.sendall(http_get("/head", alice, method="HEAD"))
    sent += http_get("/head", alice, method="HEAD")
    assert st.wait_data(len(sent)) == sent
    st.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert c.recv(1000) == b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    expect_pod(c)
    assert link.no_incoming()
    # 100 Continue, then the response with Connection: close: the
    # connection ends after it, and so does the stream
    c.sendall(http_get("/close", alice))
    sent += http_get("/close", alice)
    st.wait_data(len(sent))
    resp = b"HTTP/1.1 100 Continue\r\n\r\n" + local_response(b"bye", "Connection: close\r\n")
    st.send(resp)
    got = b""
    while True:
        chunk = c.recv(1000)
        if not chunk:
            break
        got += chunk
    assert got == resp
    st.wait(lambda s: s.closed == 0)
    c.close()
    # the app closes its idle connection: the next match gets a new stream
    c = client_conn(cluster)
    c.sendall(http_get("/a", alice))
    st = link.next_incoming()
    st.wait_data(len(http_get("/a", alice)))
    st.send(local_response(b"a"))
    assert read_response(c) == (200, b"a")
    st.shutdown()
    st.wait(lambda s: s.closed == 0)
    expect_pod(c)
    c.sendall(http_get("/b", alice))
    st2 = link.next_incoming()
    assert st2.id != st.id
    assert st2.wait_data(len(http_get("/b", alice))) == http_get("/b", alice)
    st2.send(local_response(b"b"))
    assert read_response(c) == (200, b"b")
    c.close()
    st2.wait(lambda s: s.closed == 0)  # the client left: the stream ends
    # close-delimited: the app closes to end the body
    c = client_conn(cluster)
    c.sendall(http_get("/eof", alice))
    st = link.next_incoming()
    st.wait_data(1)
    st.send(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    st.shutdown()
    got = b""
    while True:
        chunk = c.recv(1000)
        if not chunk:
            break
        got += chunk
    assert got == b"HTTP/1.1 200 OK\r\n\r\nuntil the end"
    c.close()


def test_stolen_request_aborted(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL, "path ^/s\n") == "ok"
    # the launcher resets the stream: the client sees a reset
    c = client_conn(cluster)
    c.sendall(http_get("/s1"))
    st = link.next_incoming()
    st.wait_data(1)
    st.close(104)
    with pytest.raises((ConnectionResetError, EOFError)):
        read_response(c)
    c.close()
    # the client goes away mid-request: the stream is reset
    c = client_conn(cluster)
    c.sendall(http_get("/s2"))
    st = link.next_incoming()
    st.wait_data(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    st.wait(lambda s: s.closed is not None)
    # the session ends with a stolen request in flight: the client is reset
    c = client_conn(cluster)
    c.sendall(http_get("/s3"))
    st = link.next_incoming()
    st.wait_data(1)
    link.close()
    with pytest.raises((ConnectionResetError, EOFError)):
        read_response(c)
    c.close()
    wait_pod_answers(cluster, 2)


def test_steal_whole_port_bulk_both_ways(cluster, links):
    link = links()
    assert link.subscribe(80, STEAL) == "ok"
    c = client_conn(cluster, timeout=30)
    up = os.urandom(3 << 20)
    threading.Thread(target=c.sendall, args=(up,), daemon=True).start()
    st = link.next_incoming()
    assert st.wait_data(len(up), timeout=30) == up
    down = os.urandom(3 << 20)
    got = []

    def read_all():
        while True:
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            got.append(chunk)

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    st.send(down)
    st.shutdown()
    t.join(30)
    assert b"".join(got) == down
    c.close()


def test_mirror_bulk_and_many_connections(cluster, links):
    link = links()
    assert link.subscribe(80, MIRROR) == "ok"
    body = os.urandom(2 << 20)
    c = client_conn(cluster, timeout=30)
    c.sendall(http_get("/big", method="POST", body=body))
    assert read_response(c) == (200, b"pod-original")
    c.close()
    st = link.next_incoming()
    assert st.wait_data(len(body) + 100, timeout=30).endswith(body)
    # 50 connections at once, each copied whole and each answered by the pod
    conns = [client_conn(cluster) for _ in range(50)]
    for i, c in enumerate(conns):
        c.sendall(http_get(f"/c{i}"))
    for c in conns:
        assert read_response(c) == (200, b"pod-original")
        c.close()
    paths = set()
    for _ in range(50):
        st = link.next_incoming()
        paths.add(st.wait_data(20).split(b" ")[1])
    assert paths == {f"/c{i}".encode() for i in range(50)}


def test_pod_local_caller_is_redirected(cluster, links):
    """A process inside the pod calling its own port (loopback) is stolen
    too (the OUTPUT rule), and the agent's own pass-through is not."""
    link = links()
    assert link.subscribe(80, STEAL, "header ^x-user: alice$\n") == "ok"
    stop, seen = serve_stolen(link, lambda req: b"local")
    try:
        for host, user, want in (("127.0.0.1", "alice", "local"), ("127.0.0.1", "bob", "pod-original"),
                                 (cluster.pod_ip, "alice", "local"), ("[::1]", "alice", "local"),
                                 (f"[{cluster.pod_ip6}]", "bob", "pod-original")):
            r = cluster.in_pod("wget", "-q", "-O", "-", "--header", f"X-User: {user}",
                               f"http://{host}/", timeout=10)
            assert r.stdout == want, (host, user, r.stdout, r.stderr)
    finally:
        stop.set()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_two_agents_share_a_mirror(cluster, links, backend):
    args = ["--nftables"] if backend == "nftables" else []
    older, newer = links(*args), links(*args)
    assert older.subscribe(80, MIRROR) == "ok"
    assert newer.subscribe(80, MIRROR) == "ok"
    for path in ("/shared", "/again"):
        c = client_conn(cluster)
        c.sendall(http_get(path))
        assert read_response(c) == (200, b"pod-original")
        c.close()
        for link in (newer, older):
            st = link.next_incoming()
            assert st.wait_data(len(http_get(path))) == http_get(path), link
    # the older one leaves: the newer still mirrors, the pod still answers
    older.close()
    c = client_conn(cluster)
    expect_pod(c, "/third")
    c.close()
    assert newer.next_incoming().wait_data(len(http_get("/third"))) == http_get("/third")


def test_older_mirror_sees_what_a_newer_steal_passes_on(cluster, links):
    mirror, steal = links(), links()
    assert mirror.subscribe(80, MIRROR) == "ok"
    assert steal.subscribe(80, STEAL, "header ^x-user: alice$\n") == "ok"
    stop, seen = serve_stolen(steal, lambda req: b"local")
    try:
        c = client_conn(cluster)
        c.sendall(http_get("/alice", [("X-User", "alice")]))
        assert read_response(c) == (200, b"local")
        c.sendall(http_get("/bob", [("X-User", "bob")]))
        assert read_response(c) == (200, b"pod-original")
        c.close()
    finally:
        stop.set()
    # the pod's app got /bob through the stealing agent's pass-through,
    # which the older agent mirrored
    st = mirror.next_incoming()
    assert st.wait_data(len(http_get("/bob", [("X-User", "bob")]))) == \
        http_get("/bob", [("X-User", "bob")])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_agent_image_carries_its_tools(cluster, links, build_dir, tmp_path, backend):
    """The agent from `make agent-image`, run inside the image's own root
    (only /proc and /dev from the host), steals with the tools the image
    carries, and its guard cleans up after SIGKILL."""
    skip_if_sanitized(build_dir)
    run(["make", "-C", str(ROOT), f"O={build_dir}", "agent-image"], timeout=280, check=True)
    import tarfile, json
    with tarfile.open(os.path.join(build_dir, "podenv-agent-oci.tar")) as t:
        t.extractall(tmp_path / "layout")
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    index = json.load(open(tmp_path / "layout" / "index.json"))
    manifest = json.load(open(blobs / index["manifests"][0]["digest"].split(":")[1]))
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(blobs / manifest["layers"][0]["digest"].split(":")[1]) as t:
        t.extractall(root)
    for tool in ("iptables-restore", "iptables-save", "ip6tables-restore", "nft"):
        assert os.path.lexists(root / "usr/sbin" / tool), tool
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f"mkdir -p {root}/proc {root}/dev && mount --rbind /proc {root}/proc && "
            f"mount --rbind /dev {root}/dev && exec chroot {root} \"$0\" \"$@\""]
    link = links(*(["--nftables"] if backend == "nftables" else []), wrap=wrap,
                 agent="/podenv-agent")
    assert link.subscribe(80, STEAL) == "ok", link.agent_log()
    c = client_conn(cluster)
    c.sendall(http_get("/image"))
    st = link.next_incoming()
    st.wait_data(len(http_get("/image")))
    st.send(local_response(b"from-image"))
    assert read_response(c) == (200, b"from-image")
    c.close()
    link.proc.send_signal(signal.SIGKILL)
    link.proc.wait()
    wait_pod_answers(cluster, 2)


def test_stale_rules_are_removed_when_an_agent_starts(cluster, links):
    """Even an agent that never subscribes removes rules of dead agents."""
    stale = "0badf00d"
    cluster.in_netns("pod", "iptables-restore", "--noflush", check=True, input=(
        f"*nat\n:PODENV-{stale}-OUT - [0:0]\n"
        f"-I OUTPUT 1 -j PODENV-{stale}-OUT\nCOMMIT\n"))
    link = links()
    deadline = time.monotonic() + 2
    while any(stale in r for r in rules(cluster)):
        assert time.monotonic() < deadline, rules(cluster)
        time.sleep(0.02)
    assert link.request(0x0202, b"") == "ok"  # HOSTNAME: the session is fine


def test_out_of_fds_pauses_accepting(cluster, links):
    """An agent out of file descriptors stops accepting for a moment
    (instead of spinning on a readable listener) and recovers."""
    link = links(wrap=["prlimit", "--nofile=40:40", "--"])
    assert link.subscribe(80, STEAL) == "ok"  # one fd per stolen connection
    conns = []
    for i in range(40):
        c = client_conn(cluster)  # the kernel completes it: the backlog
        c.sendall(http_get(f"/fd{i}"))
        conns.append(c)
    deadline = time.monotonic() + 5
    while "pausing new connections" not in link.agent_log():
        assert time.monotonic() < deadline, link.agent_log()[-2000:]
        time.sleep(0.05)
    for c in conns:
        c.close()
    # the launcher ends those streams: fds come back, the backlog drains,
    # and a new connection arrives too
    c = client_conn(cluster)
    c.sendall(http_get("/after"))
    deadline = time.monotonic() + 10
    while True:
        st = link.next_incoming(timeout=10)
        if st.wait_data(1).startswith(b"GET /after "):
            break
        st.close()
        assert time.monotonic() < deadline
    st.send(local_response(b"recovered"))
    assert read_response(c) == (200, b"recovered")
    c.close()
    assert link.proc.poll() is None
