"""The agent over its link, end to end: `podenv debug agent` (the real
launcher link) drives the real podenv-agent against the mini cluster's
bear-pod. Covers every file operation, confinement to the pod's root, the
pod's env/hostname/resolv.conf, outgoing TCP/UDP streams, authentication,
malformed input, and many concurrent streams."""
import hashlib
import os
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import run


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def agent_bin(build_dir):
    return os.path.join(build_dir, "podenv-agent")


def dbg(cluster, build_dir, *ops, input=None, timeout=60, text=True):
    """Run `podenv debug agent -t pid/POD OPS...`."""
    return run([podenv(build_dir), "debug", "agent", "-t", f"pid/{cluster.pod_pid}", *ops],
               input=input, timeout=timeout, text=text)


def ok_lines(r):
    return [l for l in r.stdout.splitlines() if l.startswith("ok") or l.startswith("error")]


@pytest.fixture
def scratch(cluster):
    """A fresh directory inside the pod's root; removed afterwards."""
    name = "/tmp/podenv-e2e-" + secrets.token_hex(4)
    host = cluster.pod_path(name)
    os.makedirs(host)
    yield name, host
    subprocess.run(["rm", "-rf", host])


def test_stat_read_list(cluster, build_dir):
    r = dbg(cluster, build_dir, "stat /app/config.yaml", "lstat /app/rootlink",
            "cat /app/config.yaml", "readfile /etc/hostname", "ls /app", "lscount /app/tree/d01")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    size = len(cluster.fixtures["config_text"])
    assert lines[0].startswith("ok mode=100644 ") and f" size={size} " in lines[0]
    assert lines[1].startswith("ok mode=120777 ")
    assert cluster.fixtures["config_text"] in r.stdout
    assert "bear-pod\n" in r.stdout
    assert "l rootlink 1" in lines and "d tree 4096" in lines
    assert "ok entries=50" in lines


def test_big_file_intact(cluster, build_dir):
    r = dbg(cluster, build_dir, "cat /data/big.bin", text=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == cluster.fixtures["big_size"]
    assert hashlib.sha256(r.stdout).hexdigest() == cluster.fixtures["big_sha256"]


def test_root_only_file_is_read_as_the_agent(cluster, build_dir):
    # The agent runs as root (as a privileged Kubernetes agent would).
    r = dbg(cluster, build_dir, "cat /app/secret.txt")
    assert r.returncode == 0 and r.stdout == cluster.fixtures["secret_text"]


def test_every_write_operation(cluster, build_dir, scratch):
    d, host = scratch
    r = dbg(cluster, build_dir,
            f"mkdir {d}/sub", f"write {d}/sub/f hello-pod", f"cat {d}/sub/f",
            f"truncate {d}/sub/f 5", f"rename {d}/sub/f {d}/sub/g", f"link {d}/sub/g {d}/h",
            f"symlink /etc/hostname {d}/s", f"readlink {d}/s", f"chmod 600 {d}/h",
            f"access {d}/h r", f"statfs {d}", f"unlink {d}/sub/g", f"stat {d}/h",
            f"rmdir {d}/sub")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello-pod" in r.stdout
    assert "ok wrote=9" in r.stdout
    assert "ok /etc/hostname" in r.stdout
    assert not os.path.exists(os.path.join(host, "sub"))
    with open(os.path.join(host, "h")) as f:
        assert f.read() == "hello"
    assert oct(os.stat(os.path.join(host, "h")).st_mode & 0o777) == "0o600"
    assert os.readlink(os.path.join(host, "s")) == "/etc/hostname"
    # errors come back as errno names
    r = dbg(cluster, build_dir, f"rmdir {d}", f"mkdir {d}")
    assert r.returncode == 1
    assert ok_lines(r)[0].startswith("error ENOTEMPTY")
    assert ok_lines(r)[1].startswith("error EEXIST")


def test_xattrs(cluster, build_dir, scratch):
    d, host = scratch
    r = dbg(cluster, build_dir, f"write {d}/x v", f"setxattr {d}/x user.podenv bear")
    if "EOPNOTSUPP" in r.stdout or "ENOTSUP" in r.stdout:
        pytest.skip("no user xattrs on the pod's filesystem here")
    r = dbg(cluster, build_dir, f"getxattr {d}/x user.podenv", f"listxattr {d}/x")
    assert r.returncode == 0, r.stdout
    assert ok_lines(r) == ["ok bear", "ok user.podenv"]


def test_escapes_stay_inside_the_pod(cluster, build_dir):
    assert os.path.exists("/etc/shadow")  # the host has one; the pod does not
    r = dbg(cluster, build_dir, "stat /../../etc/shadow", "stat /app/rootlink/../../etc/shadow",
            "stat /proc/self/root/etc/passwd", "cat /app/rootlink/etc/os-release",
            "readfile /../../../etc/os-release")
    lines = ok_lines(r)
    assert lines[0].startswith("error ENOENT"), lines
    assert lines[1].startswith("error ENOENT"), lines
    assert lines[2].startswith("error ELOOP"), lines
    assert r.stdout.count("ID=bearos") == 2


def test_symlink_swapped_during_calls(cluster, build_dir):
    """A link in the pod flips between a directory and an absolute symlink to
    the host's /tmp while the agent resolves through it: a file that exists
    only on the host must never be read."""
    marker = "podenv-host-only-" + secrets.token_hex(4)
    with open(f"/tmp/{marker}", "w") as f:
        f.write("HOST SECRET\n")
    race = cluster.pod_path("/app/race")
    stop = threading.Event()

    def flip():
        tmp = race + ".new"
        while not stop.is_set():
            for target in ("/tmp", "/app/tree"):
                try:
                    os.symlink(target, tmp)
                    os.replace(tmp, race)
                except OSError:
                    pass

    t = threading.Thread(target=flip)
    t.start()
    try:
        r = dbg(cluster, build_dir, *[f"readfile /app/race/{marker}"] * 300, timeout=120)
    finally:
        stop.set()
        t.join()
        os.unlink(f"/tmp/{marker}")
        for p in (race, race + ".new"):
            if os.path.lexists(p):
                os.unlink(p)
    assert "HOST SECRET" not in r.stdout
    assert len(ok_lines(r)) == 300
    assert all(l.startswith("error ENOENT") for l in ok_lines(r))


def test_env_hostname_resolvconf(cluster, build_dir):
    r = dbg(cluster, build_dir, "hostname", "env", "resolvconf")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == "ok bear-pod"
    for k, v in cluster.pod["env"].items():
        assert f"{k}={v}\n" in r.stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in r.stdout
    assert f"nameserver {cluster.dns_ip}" in r.stdout


def test_tcp_udp_http_through_the_pod(cluster, build_dir):
    echo = cluster.services["echo"]["ipv4"]
    api = cluster.services["api"]["ipv4"]
    r = dbg(cluster, build_dir, f"tcp {echo} 7", input="hello through the pod\n")
    assert r.returncode == 0 and r.stdout == "hello through the pod\n"
    r = dbg(cluster, build_dir, f"udp {echo} 7", input="datagram\n")
    assert r.returncode == 0 and r.stdout == "datagram\n"
    r = dbg(cluster, build_dir, f"tcp {api} 80", input="GET /hello HTTP/1.0\r\n\r\n")
    assert r.returncode == 0 and "cluster-api /hello" in r.stdout
    # IPv6 too
    r = dbg(cluster, build_dir, f"tcp {cluster.services['echo']['ipv6']} 7", input="six\n")
    assert r.stdout == "six\n"
    # (test_cluster.py proves the host has no way into the cluster, so these
    # answers came through the pod's network namespace)


def test_refused_connect_is_fast(cluster, build_dir):
    t = time.monotonic()
    r = dbg(cluster, build_dir, f"tcp {cluster.services['echo']['ipv4']} 9", input="")
    assert r.returncode == 1
    assert ok_lines(r)[0].startswith("error ECONNREFUSED")
    assert time.monotonic() - t < 5


def test_big_tcp_transfer_intact(cluster, build_dir, tmp_path):
    data = os.urandom(64 << 20)
    src = tmp_path / "data"
    src.write_bytes(data)
    with open(src, "rb") as f:
        r = subprocess.run([podenv(build_dir), "debug", "agent", "-t", f"pid/{cluster.pod_pid}",
                            f"tcp {cluster.services['echo']['ipv4']} 7"], stdin=f,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.timeout(300)
def test_100_concurrent_streams_of_8_mib(cluster, build_dir):
    r = dbg(cluster, build_dir, f"echoload {cluster.services['echo']['ipv4']} 7 100 8388608",
            timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok streams=100 bytes_each=8388608" in r.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def listening_agent(cluster, build_dir, tmp_path):
    """An agent with --listen on loopback and a token file."""
    token = secrets.token_hex(32)
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    port = free_port()
    p = subprocess.Popen([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
                          f"127.0.0.1:{port}", "--token-file", str(tf), "-t", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    assert "ready, listening" in line, line
    yield {"port": port, "token_file": str(tf), "token": token, "proc": p}
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def connect_dbg(build_dir, agent, *ops, token_file=None, timeout=60):
    return run([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{agent['port']}",
                "--token-file", token_file or agent["token_file"], *ops], timeout=timeout)


def test_listen_with_token(build_dir, listening_agent):
    r = connect_dbg(build_dir, listening_agent, "hostname")
    assert r.returncode == 0 and r.stdout == "ok bear-pod\n"


def test_wrong_token_is_refused(build_dir, listening_agent, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text(secrets.token_hex(32))
    r = connect_dbg(build_dir, listening_agent, "hostname", token_file=str(bad))
    assert r.returncode == 1
    assert "authentication failed" in r.stderr.lower() or "token" in r.stderr.lower(), r.stderr
    # the agent is still there for the right token
    assert connect_dbg(build_dir, listening_agent, "hostname").returncode == 0


def test_malformed_frame_ends_only_that_session(build_dir, listening_agent):
    port = listening_agent["port"]
    # a good client, busy for a while
    good = subprocess.Popen([podenv(build_dir), "debug", "agent", "--connect",
                             f"127.0.0.1:{port}", "--token-file", listening_agent["token_file"],
                             "statloop /etc/hostname 200000 8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    # an authenticated client that then sends garbage
    from agent_wire import hello_frame, read_frame
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(hello_frame(bytes.fromhex(listening_agent["token"])))
    t, _, _, _ = read_frame(s)
    assert t == 0x0002  # WELCOME
    s.sendall(struct.pack("<IHHQ", 4, 0x0101, 0, 7) + b"\xff\xff\xff\xff")  # STAT, bad string
    t, flags, _, payload = read_frame(s)
    assert t == 0x0006  # GOODBYE with a reason
    code, = struct.unpack_from("<I", payload)
    assert code == 1
    assert s.recv(1) == b""  # then closed
    s.close()
    # a client that is not podenv at all
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = s.recv(4096)
    s.close()
    out, err = good.communicate(timeout=120)
    assert good.returncode == 0, err
    assert "ok ops=200000" in out
    assert listening_agent["proc"].poll() is None


def test_agent_exits_without_clients(cluster, build_dir, tmp_path):
    tf = tmp_path / "token"
    tf.write_text(secrets.token_hex(32))
    t = time.monotonic()
    r = run([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
             f"127.0.0.1:{free_port()}", "--token-file", str(tf), "-t", "1"], timeout=20)
    assert r.returncode == 0
    assert "no client for 1 s" in r.stderr
    assert time.monotonic() - t < 10


def test_no_agent_left_behind(cluster, build_dir):
    def agents():
        out = run(["pgrep", "-f", f"podenv-agent --pid {cluster.pod_pid} --stdio"]).stdout
        return out.split()
    before = agents()
    for _ in range(5):
        assert dbg(cluster, build_dir, "hostname").returncode == 0
    time.sleep(0.2)
    assert agents() == before


def test_sigterm_says_goodbye(build_dir, listening_agent):
    """SIGTERM: the agent tells its launchers why and exits cleanly."""
    port = listening_agent["port"]
    good = subprocess.Popen([podenv(build_dir), "debug", "agent", "--connect",
                             f"127.0.0.1:{port}", "--token-file", listening_agent["token_file"],
                             "statloop /etc/hostname 100000000 1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    listening_agent["proc"].send_signal(signal.SIGTERM)
    assert listening_agent["proc"].wait(timeout=10) == 0
    out, err = good.communicate(timeout=30)
    assert good.returncode != 0
    assert "agent terminated" in err


@pytest.mark.timeout(60)
def test_silent_client_is_dropped_after_10s(listening_agent):
    s = socket.create_connection(("127.0.0.1", listening_agent["port"]), timeout=30)
    t = time.monotonic()
    assert s.recv(1) == b""  # closed by the agent, not by us
    assert 9 <= time.monotonic() - t < 20
    s.close()


def test_token_from_the_environment(cluster, build_dir, tmp_path):
    """A Kubernetes Job passes the per-session token as PODENV_AGENT_TOKEN."""
    token = secrets.token_hex(32)
    tf = tmp_path / "token"
    tf.write_text(token)
    port = free_port()
    env = dict(os.environ, PODENV_AGENT_TOKEN=token)
    p = subprocess.Popen([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
                          f"127.0.0.1:{port}", "-t", "0"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "ready, listening" in p.stderr.readline()
        r = run([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{port}",
                 "--token-file", str(tf), "hostname"])
        assert r.returncode == 0 and r.stdout == "ok bear-pod\n", r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


def test_launcher_vanishing_mid_transfer_leaves_the_agent_serving(cluster, build_dir,
                                                                   listening_agent):
    """A launcher killed while its streams move data must end only its own
    session (the agent used to free a stream it was still using)."""
    echo = cluster.services["echo"]["ipv4"]
    for _ in range(3):
        p = subprocess.Popen([podenv(build_dir), "debug", "agent", "--connect",
                              f"127.0.0.1:{listening_agent['port']}", "--token-file",
                              listening_agent["token_file"], f"echoload {echo} 7 20 67108864"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.7)
        p.kill()
        p.wait()
    time.sleep(0.3)
    assert listening_agent["proc"].poll() is None, listening_agent["proc"].stderr.read()
    r = connect_dbg(build_dir, listening_agent, "hostname")
    assert r.returncode == 0 and r.stdout == "ok bear-pod\n"


def test_token_digest_in_env_authenticates(cluster, build_dir, tmp_path):
    """A Kubernetes Job carries only SHA-256(token) as
    PODENV_AGENT_TOKEN_SHA256: the right token gets in; a wrong one, and the
    digest itself (someone who read the Job), do not."""
    token = secrets.token_hex(32)
    digest = hashlib.sha256(bytes.fromhex(token)).hexdigest()
    port = free_port()
    env = dict(os.environ, PODENV_AGENT_TOKEN_SHA256=digest)
    env.pop("PODENV_AGENT_TOKEN", None)
    p = subprocess.Popen([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
                          f"127.0.0.1:{port}", "-t", "0"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "ready, listening" in p.stderr.readline()
        for tok, ok in ((token, True), (secrets.token_hex(32), False), (digest, False)):
            tf = tmp_path / f"token-{tok[:8]}"
            tf.write_text(tok)
            r = run([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{port}",
                     "--token-file", str(tf), "hostname"])
            if ok:
                assert r.returncode == 0 and r.stdout == "ok bear-pod\n", r.stderr
            else:
                assert r.returncode != 0 and "token" in r.stderr, r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
