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
        self.eof = False
        self.closed = None  # the STREAM_CLOSE error once closed
        self.cond = threading.Condition()

    def wait(self, pred, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self), timeout):
                raise AssertionError(f"stream {self.id:#x}: timed out; data={bytes(self.data)!r} "
                                     f"eof={self.eof} closed={self.closed}")

    def wait_data(self, n, timeout=10):
        self.wait(lambda s: len(s.data) >= n or s.closed is not None, timeout)
        return bytes(self.data)

    def send(self, data):
        for i in range(0, len(data), 65536):
            self.link.send_frame(STREAM_DATA, 0, self.id, data[i:i + 65536])

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

    def __init__(self, build_dir, cluster, *args):
        self.sock, child = socket.socketpair()
        self.log = open(f"/tmp/podenv-e2e-incoming-{secrets.token_hex(4)}.log", "w+")
        self.proc = subprocess.Popen(
            [os.path.join(build_dir, "podenv-agent"), "--pid", str(cluster.pod_pid), "--stdio",
             "-l", "debug", *args], stdin=child, stdout=subprocess.DEVNULL, stderr=self.log)
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
                elif t in (STREAM_DATA, STREAM_SHUTDOWN, STREAM_CLOSE):
                    st = self.streams.get(ident)
                    if st is None:
                        continue
                    with st.cond:
                        if t == STREAM_DATA:
                            st.data += p
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

    def make(*args):
        link = Link(build_dir, cluster, *args)
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


def read_response(s):
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    data = b""
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
    assert len(rest) == n, f"more than one response: {rest!r}"
    return int(head.split()[1]), rest


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
