"""The app's network inside podenv exec: outgoing traffic and DNS leave
from the pod (the mini cluster's services answer only there), filters send
chosen traffic to this host instead, and errors look like the pod's."""
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import run

PY = "/usr/bin/python3"


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def sh(cluster, build_dir, script, config=None, tmp_path=None, timeout=90, flags=()):
    args = [podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", *flags]
    if config is not None:
        path = os.path.join(str(tmp_path), f"cfg-{secrets.token_hex(3)}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        args += ["-f", path]
    return subprocess.run(args + ["--", "sh", "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, cwd="/tmp")


def test_http_by_short_name_fqdn_and_static_busybox(cluster, build_dir):
    r = sh(cluster, build_dir, "curl -s -m 10 http://api/short; echo; "
           "curl -s -m 10 http://api.default.svc.cluster.local/fqdn; echo; "
           # busybox-static (no libc to hook) resolving "api" itself. Its
           # wget segfaults on this Debian build even natively, so nc speaks
           # the HTTP.
           "printf 'GET /static HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 10 api 80 | tail -1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["cluster-api /short", "cluster-api /fqdn",
                                     "cluster-api /static"]


def test_dns_records_from_the_cluster(cluster, build_dir):
    r = sh(cluster, build_dir, "dig +short api.default.svc.cluster.local A; "
           "dig +short api.default.svc.cluster.local AAAA; "
           "dig +short _http._tcp.api.default.svc.cluster.local SRV; "
           "nslookup db | tail -n +3; getent hosts echo")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "10.213.0.11\n" in out and "fd00:213::11\n" in out
    assert "api.default.svc.cluster.local." in out and " 80 " in out  # SRV
    assert "10.213.0.12" in out  # nslookup db, via search domains
    assert "echo.default.svc.cluster.local" in out


def test_truncated_answer_over_tcp(cluster, build_dir):
    r = sh(cluster, build_dir, "dig +short many.default.svc.cluster.local | wc -l; "
           "dig +notcp +ignore +short many.default.svc.cluster.local | wc -l")
    assert r.returncode == 0, r.stderr
    full, truncated = [int(x) for x in r.stdout.split()]
    assert full == 100  # dig retried over TCP after a TC answer
    assert truncated < 100


def test_tcp_and_udp_echo(cluster, build_dir):
    r = sh(cluster, build_dir, "echo tcp-hello | busybox nc -w 3 echo 7; "
           f"{PY} -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.settimeout(5); s.sendto(b'udp-hello', ('echo', 7)); print(s.recv(100).decode())\"")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["tcp-hello", "udp-hello"]


@pytest.mark.timeout(200)
def test_64_mib_through_tcp_intact(cluster, build_dir):
    script = (
        "import hashlib, os, socket, threading\n"
        "data = os.urandom(64 << 20)\n"
        "s = socket.create_connection(('echo', 7))\n"
        "def send():\n"
        "    s.sendall(data); s.shutdown(socket.SHUT_WR)\n"
        "t = threading.Thread(target=send); t.start()\n"
        "h = hashlib.sha256(); n = 0\n"
        "while True:\n"
        "    b = s.recv(1 << 20)\n"
        "    if not b: break\n"
        "    h.update(b); n += len(b)\n"
        "t.join()\n"
        "print(n, h.hexdigest() == hashlib.sha256(data).hexdigest())\n")
    r = sh(cluster, build_dir, f"{PY} -c \"{script}\"", timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(64 << 20), "True"]


def test_200_concurrent_connections(cluster, build_dir):
    script = (
        "import asyncio\n"
        "async def one(i):\n"
        "    r, w = await asyncio.open_connection('echo', 7)\n"
        "    msg = (f'conn-{i}-' * 100).encode()\n"
        "    w.write(msg); await w.drain(); w.write_eof()\n"
        "    got = await r.read()\n"
        "    w.close()\n"
        "    return got == msg\n"
        "async def main():\n"
        "    res = await asyncio.gather(*(one(i) for i in range(200)))\n"
        "    print(sum(res))\n"
        "asyncio.run(main())\n")
    r = sh(cluster, build_dir, f"{PY} -c \"{script}\"")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "200"


def test_closed_port_is_refused_quickly(cluster, build_dir):
    t = time.monotonic()
    r = sh(cluster, build_dir, "curl -s -m 20 http://echo:81/ ; echo rc=$?")
    assert "rc=7" in r.stdout  # curl: couldn't connect (ECONNREFUSED)
    assert time.monotonic() - t < 10


def test_unreachable_address_fails_like_the_pod(cluster, build_dir):
    # 10.213.0.99 is in the pod's subnet but nobody has it: the pod's kernel
    # gives up after ARP fails (EHOSTUNREACH); the app sees the same.
    r = sh(cluster, build_dir, f"{PY} -c \"import socket,errno\n"
           "try:\n"
           "    socket.create_connection(('10.213.0.99', 80), timeout=30)\n"
           "except OSError as e:\n"
           "    print(errno.errorcode.get(e.errno, e))\"", timeout=60)
    assert r.stdout.strip() in ("EHOSTUNREACH", "timed out"), r.stdout + r.stderr


def host_ip():
    out = run(["ip", "-4", "-o", "addr", "show", "scope", "global"]).stdout.split()
    for i, w in enumerate(out):
        if w == "inet":
            return out[i + 1].split("/")[0]
    pytest.skip("this host has no global IPv4 address for a local server")


@pytest.fixture
def host_server():
    """A TCP and a UDP echo on this host's own address (traffic stays on
    the machine: it is delivered locally)."""
    ip = host_ip()
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((ip, 0))
    tcp.listen(16)
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((ip, port))
    stop = threading.Event()

    def serve_tcp():
        tcp.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = tcp.accept()
            except OSError:
                continue
            c.sendall(b"host-side\n")
            c.close()

    def serve_udp():
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                d, a = udp.recvfrom(100)
            except OSError:
                continue
            udp.sendto(b"host-udp:" + d, a)

    threads = [threading.Thread(target=serve_tcp), threading.Thread(target=serve_udp)]
    for t in threads:
        t.start()
    yield ip, port
    stop.set()
    for t in threads:
        t.join()
    tcp.close()
    udp.close()


def tcp_read(ip, port):
    return f"busybox nc -w 3 {ip} {port} </dev/null"


def test_local_filter_by_subnet_and_port(cluster, build_dir, host_server, tmp_path):
    ip, port = host_server
    for entry in (f"{ip}/32", f"tcp://:{port}", f"{ip}:{port}"):
        cfg = {"feature": {"network": {"outgoing": {"filter": {"local": [entry]}}}}}
        r = sh(cluster, build_dir, tcp_read(ip, port) + "; echo x | busybox nc -w 3 echo 7",
               config=cfg, tmp_path=tmp_path)
        assert r.stdout.splitlines() == ["host-side", "x"], (entry, r.stdout, r.stderr)


def test_remote_filter_is_the_inverse(cluster, build_dir, host_server, tmp_path):
    ip, port = host_server
    cfg = {"feature": {"network": {"outgoing": {"filter": {"remote": ["10.213.0.0/24"]}}}}}
    r = sh(cluster, build_dir, tcp_read(ip, port) + "; echo y | busybox nc -w 3 10.213.0.13 7",
           config=cfg, tmp_path=tmp_path)
    assert r.stdout.splitlines() == ["host-side", "y"], r.stderr


def test_tcp_false_and_udp_false(cluster, build_dir, host_server, tmp_path):
    ip, port = host_server
    cfg = {"feature": {"network": {"outgoing": {"tcp": False}}}}
    r = sh(cluster, build_dir, tcp_read(ip, port), config=cfg, tmp_path=tmp_path)
    assert r.stdout == "host-side\n", r.stderr
    cfg = {"feature": {"network": {"outgoing": {"udp": False}}}}
    r = sh(cluster, build_dir, f"{PY} -c \"import socket; s=socket.socket(2, 2); "
           f"s.settimeout(5); s.sendto(b'u', ('{ip}', {port})); print(s.recv(100).decode())\"",
           config=cfg, tmp_path=tmp_path)
    assert r.stdout == "host-udp:u\n", r.stderr


def test_dns_false_and_dns_filter_resolve_locally(cluster, build_dir, tmp_path):
    # The host's resolvers do not know the cluster's names.
    cfg = {"feature": {"network": {"dns": False}}}
    r = sh(cluster, build_dir, "getent hosts api.default.svc.cluster.local; echo rc=$?",
           config=cfg, tmp_path=tmp_path)
    assert "10.213.0.11" not in r.stdout and "rc=2" in r.stdout
    cfg = {"feature": {"network": {"dns": {"filter": {"local": ["api"]}}}}}
    r = sh(cluster, build_dir, "getent hosts api; echo rc=$?; getent hosts db",
           config=cfg, tmp_path=tmp_path)
    assert "10.213.0.11" not in r.stdout and "fd00:213::11" not in r.stdout
    assert "db.default.svc.cluster.local" in r.stdout


def test_agent_dying_resets_connections(cluster, build_dir):
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "--", PY,
                          "-c", "import socket, time\n"
                          "s = socket.create_connection(('echo', 7))\n"
                          "print('connected', flush=True)\n"
                          "try:\n"
                          "    while True:\n"
                          "        s.sendall(b'x'); s.recv(1); time.sleep(0.05)\n"
                          "except OSError as e:\n"
                          "    print('error', e.errno, flush=True)\n"
                          "time.sleep(5)\n"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "connected\n"
        agent = run(["pgrep", "-P", str(p.pid), "-f", "podenv-agent"]).stdout.split()
        os.kill(int(agent[0]), signal.SIGKILL)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert "lost the agent" in err
    assert "the agent was killed by signal 9" in err or "closed the connection" in err


def test_dns_over_tcp_pipelined_and_garbage(cluster, build_dir):
    """Pipelined TCP queries answered from the cache, a client that hangs
    up at once, and a client sending garbage: the DNS server (and with it
    podenv) keeps going."""
    script = (
        "import socket, struct, subprocess\n"
        "def q(i, name):\n"
        "    n = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\\\0'\n"
        "    m = struct.pack('>HHHHHH', i, 0x0100, 1, 0, 0, 0) + n + struct.pack('>HH', 1, 1)\n"
        "    return struct.pack('>H', len(m)) + m\n"
        "name = 'api.default.svc.cluster.local'\n"
        "subprocess.run(['getent', 'hosts', name], stdout=subprocess.DEVNULL)\n"
        "for _ in range(20):\n"
        "    s = socket.create_connection(('198.18.0.1', 53))\n"
        "    s.sendall(b''.join(q(i, name) for i in range(10)))\n"
        "    s.close()\n"
        "s = socket.create_connection(('198.18.0.1', 53))\n"
        "s.sendall(b'\\\\x00\\\\x05hello')\n"
        "s.settimeout(5)\n"
        "print('garbage-closed', s.recv(10) == b'')\n"
        "out = subprocess.run(['getent', 'hosts', 'db'], capture_output=True, text=True).stdout\n"
        "print('still-resolving', 'db.default' in out)\n")
    r = sh(cluster, build_dir, f"{PY} -c \"{script}\"")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["garbage-closed", "True", "still-resolving", "True"]


def test_local_flows_closed_by_the_far_side_release_their_fds(cluster, build_dir, host_server,
                                                             tmp_path):
    ip, port = host_server
    cfg = {"feature": {"network": {"outgoing": {"filter": {"local": [f"{ip}/32"]}}}}}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    script = (
        "import socket, time\n"
        f"for i in range(300):\n"
        f"    s = socket.create_connection(('{ip}', {port})); s.recv(100); s.close()\n"
        "print('done', flush=True); time.sleep(3)\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "-f",
                          str(path), "--", PY, "-c", script], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "done\n"
        time.sleep(0.5)
        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
    finally:
        p.communicate(timeout=30)
    assert fds < 100, f"{fds} fds open in the launcher after 300 closed connections"


def test_many_short_connections_none_reset(cluster, build_dir):
    """One connection per request, as HTTP/1.0 clients do: the app reuses
    its ports quickly, and none of its connections may be reset."""
    script = (
        "import socket\n"
        "bad = 0\n"
        "for i in range(1000):\n"
        "    try:\n"
        "        s = socket.create_connection(('api', 80), timeout=10)\n"
        "        s.sendall(b'GET /r HTTP/1.0\\\\r\\\\n\\\\r\\\\n')\n"
        "        data = b''\n"
        "        while True:\n"
        "            b = s.recv(65536)\n"
        "            if not b: break\n"
        "            data += b\n"
        "        s.close()\n"
        "        bad += b'cluster-api /r' not in data\n"
        "    except OSError:\n"
        "        bad += 1\n"
        "print(bad)\n")
    r = sh(cluster, build_dir, f"{PY} -c \"{script}\"", timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


@pytest.fixture
def host_loopback_server():
    """A TCP server on this host's 127.0.0.1 (loopback: never leaves it)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            c.sendall(b"host-loopback\n")
            c.close()

    t = threading.Thread(target=serve)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


LOCAL_SERVERS = (
    # the app's own servers: TCP on 127.0.0.1 and on 0.0.0.0, UDP on 127.0.0.1
    f"{PY} -c \"\nimport socket, threading, time\n"
    "def tcp(addr, port, word):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind((addr, port)); s.listen(8)\n"
    "    def loop():\n"
    "        while True:\n"
    "            c, _ = s.accept(); c.sendall(word); c.close()\n"
    "    threading.Thread(target=loop, daemon=True).start()\n"
    "tcp('127.0.0.1', 8000, b'app-8000\\n'); tcp('0.0.0.0', 8001, b'app-8001\\n')\n"
    "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 9999))\n"
    "def udp():\n"
    "    while True:\n"
    "        d, a = u.recvfrom(100); u.sendto(b'app-udp:' + d, a)\n"
    "threading.Thread(target=udp, daemon=True).start()\n"
    "open('/tmp/podenv-lo-ready', 'w').close(); time.sleep(60)\n\" & P=$!; "
    "while [ ! -e /tmp/podenv-lo-ready ]; do sleep 0.05; done; "
)

UDP_ASK = (f"{PY} -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.settimeout(5); s.sendto(b'hi', ('127.0.0.1', 9999)); print(s.recv(100).decode())\"")


def test_loopback_is_the_pods_unless_the_app_listens(cluster, build_dir):
    """ignore_localhost false (mirrord's default): 127.0.0.1 reaches the
    pod's loopback (its app on :80 answers pod-original), except ports the
    app itself listens on, which stay on the app's own loopback."""
    r = sh(cluster, build_dir,
           "rm -f /tmp/podenv-lo-ready; curl -s -m 10 http://127.0.0.1/; echo; "
           + LOCAL_SERVERS +
           "busybox nc -w 3 127.0.0.1 8000 </dev/null; busybox nc -w 3 127.0.0.2 8001 </dev/null; "
           + UDP_ASK + "; busybox nc -w 3 127.0.0.1 8000 </dev/null; "
           "curl -s -m 10 http://127.0.0.1:80/again; echo; "
           "curl -s -m 10 http://127.0.0.1:81/; echo \"closed=$?\"; kill $P")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["pod-original", "app-8000", "app-8001", "app-udp:hi",
                                     "app-8000", "pod-original", "closed=7"], r.stderr


def test_ignore_localhost_reaches_this_hosts_loopback(cluster, build_dir, host_loopback_server,
                                                     tmp_path):
    port = host_loopback_server
    cfg = {"feature": {"network": {"outgoing": {"ignore_localhost": True}}}}
    r = sh(cluster, build_dir,
           f"rm -f /tmp/podenv-lo-ready; busybox nc -w 3 127.0.0.1 {port} </dev/null; "
           + LOCAL_SERVERS + "busybox nc -w 3 127.0.0.1 8000 </dev/null; " + UDP_ASK
           + "; kill $P", config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["host-loopback", "app-8000", "app-udp:hi"], r.stderr
    # Without it, the same port is the pod's loopback, where nothing listens.
    r = sh(cluster, build_dir, f"busybox nc -w 3 127.0.0.1 {port} </dev/null; echo rc=$?")
    assert "host-loopback" not in r.stdout, r.stdout


UNIX_SERVER = r'''
import socket, sys, threading
def serve(l, word):
    while True:
        c, _ = l.accept()
        threading.Thread(target=echo, args=(c, word), daemon=True).start()
def echo(c, word):
    # the first chunk answered with a prefix, then plain echo until EOF
    first = True
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall((word if first else b"") + d)
        first = False
    c.close()
path, abstract = sys.argv[1], sys.argv[2] == "1"
s = socket.socket(socket.AF_UNIX)
s.bind("\0bear-abstract" if abstract else path)
s.listen(16)
print("ready", flush=True)
serve(s, b"abstract:" if abstract else b"pod-unix:")
'''


@pytest.fixture
def pod_unix_servers(cluster):
    """Unix stream sockets in the pod: /tmp/bear.sock in its root, and the
    abstract @bear-abstract in its network namespace."""
    path = cluster.pod_path("/tmp/bear.sock")
    if os.path.exists(path):
        os.unlink(path)
    procs = [subprocess.Popen([PY, "-c", UNIX_SERVER, path, "0"], stdout=subprocess.PIPE,
                              text=True),
             subprocess.Popen(["nsenter", "--net=" + cluster.netns_path("pod"), "--", PY,
                               "-c", UNIX_SERVER, "-", "1"], stdout=subprocess.PIPE, text=True)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if os.path.exists(path):
            os.unlink(path)


UNIX_CLIENT = r'''
import fcntl, hashlib, os, select, socket
def ask(p, nonblock=False):
    s = socket.socket(socket.AF_UNIX)
    if nonblock:
        s.setblocking(False)
    s.connect(p)
    if nonblock:
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        select.select([], [s], [], 5)
    s.sendall(b"hi")
    if nonblock:
        select.select([s], [], [], 5)
    print(s.recv(100).decode())
    s.close()
ask("/tmp/bear.sock"); ask("\0bear-abstract"); ask("/tmp/bear.sock", nonblock=True)
# 4 MiB through, half-closed, intact
s = socket.socket(socket.AF_UNIX); s.connect("/tmp/bear.sock")
data = os.urandom(4 << 20); s.sendall(b"x")
assert s.recv(100).startswith(b"pod-unix:")
import threading
t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))); t.start()
got = b""
while True:
    d = s.recv(1 << 16)
    if not d:
        break
    got += d
t.join()
print("bulk", hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest())
for p in ("/tmp/bear-missing.sock", "/tmp/other.sock"):
    try:
        socket.socket(socket.AF_UNIX).connect(p)
    except OSError as e:
        print(p, e.errno)
# a unix server of the app's own, whose path does not match: local
l = socket.socket(socket.AF_UNIX); l.bind("/tmp/podenv-local-test.sock"); l.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("/tmp/podenv-local-test.sock")
a, _ = l.accept(); a.sendall(b"local"); print(c.recv(10).decode())
os.unlink("/tmp/podenv-local-test.sock")
'''


@pytest.mark.parametrize("incoming", ["mirror", "off"])
def test_unix_streams_connect_in_the_pod(cluster, build_dir, pod_unix_servers, tmp_path,
                                         incoming):
    """outgoing.unix_streams: matching unix socket connects are made in the
    pod (a path in its root, an abstract name in its network); the rest stay
    local. With incoming on, the connect() watch shares the listen() filter."""
    cfg = {"feature": {"network": {"outgoing": {"unix_streams": "bear.+"},
                                   "incoming": incoming}}}
    trace = tmp_path / "trace.jsonl"
    client = tmp_path / "client.py"
    client.write_text(UNIX_CLIENT)
    r = sh(cluster, build_dir, f"{PY} {client}", config=cfg, tmp_path=tmp_path,
           flags=("--trace", str(trace)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "pod-unix:hi", "abstract:hi", "pod-unix:hi", "bulk True",
        "/tmp/bear-missing.sock 2", "/tmp/other.sock 2", "local"], r.stderr
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    unix = [x for x in lines if x["kind"] == "unix"]
    assert unix and unix[0]["path"] == "/tmp/bear.sock" and unix[0]["verdict"] == "remote"
    assert unix[0]["rule"] == 'feature.network.outgoing.unix_streams[0] "bear.+"'
