"""TLS on the agent's --listen (docs/PROTOCOL.md, "Transport security"):
a throwaway self-signed certificate per test, the agent with --tls-cert /
--tls-key, and `podenv debug agent --connect` (the real launcher link)
verifying it by pinned fingerprint or CA file. Mismatches, plain clients
against a TLS agent and the reverse fail cleanly; the token is still
checked over TLS."""
import hashlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import run
from test_agent_link import agent_bin, free_port, listening_agent, podenv  # noqa: F401


def make_cert(d, name="agent", ip="127.0.0.1"):
    """A self-signed P-256 certificate naming ip; returns (cert, key, sha256 hex)."""
    cert, key = os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN=podenv-{name}",
         "-addext", f"subjectAltName=IP:{ip}"], check=True)
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return cert, key, hashlib.sha256(der).hexdigest()


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


@pytest.fixture
def tls_agent(cluster, build_dir, tmp_path):
    """An agent with --listen on loopback over TLS, a token file and a
    self-signed certificate for 127.0.0.1."""
    cert, key, fp = make_cert(str(tmp_path))
    token = secrets.token_hex(32)
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    port = free_port()
    p = subprocess.Popen([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
                          f"127.0.0.1:{port}", "--token-file", str(tf), "--tls-cert", cert,
                          "--tls-key", key, "-t", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    assert "ready, listening" in line and "(TLS)" in line, line
    yield {"port": port, "token_file": str(tf), "token": token, "proc": p, "cert": cert,
           "key": key, "fingerprint": fp}
    stop(p)


def tls_dbg(build_dir, agent, *ops, tls=None, token_file=None, timeout=60, text=True,
            stdin=None):
    """`podenv debug agent --connect` with the agent's fingerprint pinned
    (tls=None), other TLS options (a list), or plain (tls=[])."""
    if tls is None:
        tls = ["--tls-fingerprint", agent["fingerprint"]]
    cmd = [podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{agent['port']}",
           "--token-file", token_file or agent["token_file"], *tls, *ops]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
                          timeout=timeout, stdin=stdin)


def test_hostname_big_file_and_echo_over_tls(cluster, build_dir, tls_agent, tmp_path):
    r = tls_dbg(build_dir, tls_agent, "hostname")
    assert r.returncode == 0 and r.stdout == "ok bear-pod\n", r.stderr
    r = tls_dbg(build_dir, tls_agent, "cat /data/big.bin", text=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == cluster.fixtures["big_size"]
    assert hashlib.sha256(r.stdout).hexdigest() == cluster.fixtures["big_sha256"]
    # a TCP stream through the pod, 16 MiB each way, over the TLS link
    data = os.urandom(16 << 20)
    src = tmp_path / "data"
    src.write_bytes(data)
    with open(src, "rb") as f:
        r = tls_dbg(build_dir, tls_agent, f"tcp {cluster.services['echo']['ipv4']} 7",
                    text=False, stdin=f, timeout=120)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    r = tls_dbg(build_dir, tls_agent,
                f"echoload {cluster.services['echo']['ipv4']} 7 20 1048576", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok streams=20 bytes_each=1048576" in r.stdout


def test_fingerprint_with_colons_and_ca_file(build_dir, tls_agent, tmp_path):
    fp = tls_agent["fingerprint"].upper()
    colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2))
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=["--tls-fingerprint", colons])
    assert r.returncode == 0, r.stderr
    # The self-signed certificate is its own CA; it names 127.0.0.1.
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=["--tls-ca", tls_agent["cert"]])
    assert r.returncode == 0, r.stderr
    # Another CA: not trusted.
    other, _, _ = make_cert(str(tmp_path), name="other")
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=["--tls-ca", other])
    assert r.returncode == 1
    assert "not trusted" in r.stderr, r.stderr


def test_ca_file_checks_the_agents_ip(cluster, build_dir, tmp_path):
    """A certificate from the right CA but for another IP is refused."""
    cert, key, _ = make_cert(str(tmp_path), ip="10.99.0.1")
    tf = tmp_path / "token"
    tf.write_text(secrets.token_hex(32))
    port = free_port()
    p = subprocess.Popen([agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--listen",
                          f"127.0.0.1:{port}", "--token-file", str(tf), "--tls-cert", cert,
                          "--tls-key", key, "-t", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "ready" in p.stderr.readline()
        r = tls_dbg(build_dir, {"port": port, "token_file": str(tf)}, "hostname",
                    tls=["--tls-ca", cert])
        assert r.returncode == 1
        assert "not trusted" in r.stderr and "IP address mismatch" in r.stderr, r.stderr
    finally:
        stop(p)


def test_wrong_fingerprint_is_a_clear_error(build_dir, tls_agent):
    wrong = hashlib.sha256(b"not the agent").hexdigest()
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=["--tls-fingerprint", wrong])
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "the agent's TLS certificate does not match the pinned fingerprint" in lines[0]
    assert wrong in lines[0] and tls_agent["fingerprint"] in lines[0]
    assert r.stdout == ""
    # malformed: refused before connecting
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=["--tls-fingerprint", "abcd"])
    assert r.returncode == 1 and "64 hex digits" in r.stderr


def test_plain_client_against_tls_agent(build_dir, tls_agent):
    r = tls_dbg(build_dir, tls_agent, "hostname", tls=[], timeout=20)
    assert r.returncode == 1
    assert "closed the connection during the handshake" in r.stderr, r.stderr
    assert "TLS" in r.stderr
    # raw bytes that are not TLS at all
    s = socket.create_connection(("127.0.0.1", tls_agent["port"]), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    try:
        s.recv(4096)
    except ConnectionResetError:
        pass
    s.close()
    # a half-open TLS client that never finishes the handshake ...
    idle = socket.create_connection(("127.0.0.1", tls_agent["port"]), timeout=5)
    # ... does not stop the agent from serving others
    r = tls_dbg(build_dir, tls_agent, "hostname")
    assert r.returncode == 0 and r.stdout == "ok bear-pod\n", r.stderr
    idle.close()
    assert tls_agent["proc"].poll() is None


def test_tls_client_against_plain_agent(build_dir, listening_agent):
    fp = hashlib.sha256(b"whatever").hexdigest()
    r = tls_dbg(build_dir, listening_agent, "hostname", tls=["--tls-fingerprint", fp],
                timeout=20)
    assert r.returncode == 1
    assert "TLS handshake" in r.stderr and "without TLS" in r.stderr, r.stderr
    assert listening_agent["proc"].poll() is None
    r = tls_dbg(build_dir, listening_agent, "hostname", tls=[])
    assert r.returncode == 0, r.stderr


def test_wrong_token_over_tls_is_refused(build_dir, tls_agent, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text(secrets.token_hex(32))
    r = tls_dbg(build_dir, tls_agent, "hostname", token_file=str(bad))
    assert r.returncode == 1
    assert "wrong token" in r.stderr, r.stderr
    assert tls_dbg(build_dir, tls_agent, "hostname").returncode == 0


def test_tls_options_are_checked(cluster, build_dir, tmp_path):
    cert, key, _ = make_cert(str(tmp_path))
    other_cert, other_key, _ = make_cert(str(tmp_path), name="other")
    tf = tmp_path / "token"
    tf.write_text(secrets.token_hex(32))
    base = [agent_bin(build_dir), "--pid", str(cluster.pod_pid), "--token-file", str(tf),
            "-t", "1"]
    listen = ["--listen", f"127.0.0.1:{free_port()}"]
    r = run(base + listen + ["--tls-cert", cert], timeout=20)
    assert r.returncode == 2 and "--tls-cert and --tls-key" in r.stderr
    r = run(base + listen + ["--tls-cert", cert, "--tls-key", other_key], timeout=20)
    assert r.returncode == 1 and "--tls-key" in r.stderr and "mismatch" in r.stderr, r.stderr
    r = run(base + listen + ["--tls-cert", str(tmp_path / "none"), "--tls-key", key],
            timeout=20)
    assert r.returncode == 1 and "--tls-cert" in r.stderr, r.stderr


def test_exec_over_tls_from_the_environment(cluster, build_dir, tls_agent, tmp_path):
    """session_open: connect_tcp with PODENV_AGENT_TOKEN and
    PODENV_AGENT_TLS_FINGERPRINT (the routed filesystem over the TLS link)."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"connect_tcp": f"127.0.0.1:{tls_agent['port']}"}))
    env = dict(os.environ)
    env["PODENV_AGENT_TOKEN"] = tls_agent["token"]
    env["PODENV_AGENT_TLS_FINGERPRINT"] = tls_agent["fingerprint"]
    cmd = [podenv(build_dir), "exec", "-f", str(cfg), "--", "cat", "/etc/hostname",
           "/etc/resolv.conf"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, env=env, cwd="/tmp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("bear-pod\n")  # remote files, read through the link
    assert "search default.svc.cluster.local" in r.stdout
    env["PODENV_AGENT_TLS_FINGERPRINT"] = hashlib.sha256(b"x").hexdigest()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, env=env, cwd="/tmp")
    assert r.returncode != 0
    assert "does not match the pinned fingerprint" in r.stderr, r.stderr
