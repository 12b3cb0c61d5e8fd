"""DNS in the pod through the agent (DNS_RESOLVE and DNS_QUERY), end to end:
`podenv debug agent` drives the real podenv-agent against bear-pod, whose
/etc/resolv.conf points at the cluster's dnsmasq (search
default.svc.cluster.local svc.cluster.local cluster.local, ndots:5).

dnsmasq answers names under cluster.local (NXDOMAIN for unknown ones) and
REFUSES everything else, so a short unknown name ends, after the search
list, with REFUSED: EAGAIN, as glibc's EAI_AGAIN would say in this pod."""
import os
import secrets
import signal
import socket
import struct
import subprocess
import time
from contextlib import contextmanager

import pytest

from conftest import PYTHON, run


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def dbg(cluster, build_dir, *ops, timeout=60):
    """Run `podenv debug agent -t pid/POD OPS...`."""
    return run([podenv(build_dir), "debug", "agent", "-t", f"pid/{cluster.pod_pid}", *ops],
               timeout=timeout)


def results(r):
    """The result line of each operation ("ok ..." or "error ...")."""
    return [l for l in r.stdout.splitlines() if l.startswith(("ok", "error"))]


def resolve(cluster, build_dir, name, op="resolve"):
    """(canonical name, [(address, ttl)]) or the error line."""
    r = dbg(cluster, build_dir, f"{op} {name}")
    line = results(r)[0]
    if not line.startswith("ok "):
        return line
    words = line.split()
    return words[1], [(a, int(t.split("=")[1])) for a, t in zip(words[2::2], words[3::2])]


def dnsquery(cluster, build_dir, name, qtype):
    """(header line, [record lines]) of a raw DNS_QUERY."""
    r = dbg(cluster, build_dir, f"dnsquery {name} {qtype}")
    lines = r.stdout.splitlines()
    assert lines and lines[0].startswith(("ok", "error")), r.stdout + r.stderr
    return lines[0], [l.split() for l in lines[1:] if l.startswith("  ")]


def addrs(answer):
    return sorted(a for a, _ in answer[1])


def test_short_name_resolves_through_the_search_list(cluster, build_dir):
    api = cluster.services["api"]
    cname, found = resolve(cluster, build_dir, "api")
    assert cname == "api.default.svc.cluster.local"
    assert addrs((cname, found)) == sorted([api["ipv4"], api["ipv6"]])
    assert all(ttl >= 0 for _, ttl in found)
    # one search step further: "api.default" + svc.cluster.local
    assert resolve(cluster, build_dir, "db.default")[0] == "db.default.svc.cluster.local"


def test_fqdn_with_and_without_the_root_dot(cluster, build_dir):
    echo = cluster.services["echo"]
    for name in ("echo.default.svc.cluster.local", "echo.default.svc.cluster.local."):
        cname, found = resolve(cluster, build_dir, name)
        assert cname == "echo.default.svc.cluster.local"
        assert addrs((cname, found)) == sorted([echo["ipv4"], echo["ipv6"]])


def test_family_is_honoured(cluster, build_dir):
    db = cluster.services["db"]
    assert addrs(resolve(cluster, build_dir, "db", "resolve4")) == [db["ipv4"]]
    assert addrs(resolve(cluster, build_dir, "db", "resolve6")) == [db["ipv6"]]


def test_raw_aaaa_query(cluster, build_dir):
    head, records = dnsquery(cluster, build_dir, "api.default.svc.cluster.local", "AAAA")
    assert head == "ok rcode=NOERROR tc=0 answers=1"
    assert records[0][:3] == ["api.default.svc.cluster.local.", "AAAA",
                              cluster.services["api"]["ipv6"]]


def test_raw_srv_query(cluster, build_dir):
    srv = cluster.status["dns"]["srv"]
    head, records = dnsquery(cluster, build_dir, srv["name"], "SRV")
    assert head == "ok rcode=NOERROR tc=0 answers=1"
    name, rtype, prio, weight, port, target = records[0][:6]
    assert (name, rtype) == (srv["name"] + ".", "SRV")
    assert int(port) == srv["port"] and target == srv["target"] + "."


def test_truncated_answer_is_complete_over_tcp(cluster, build_dir):
    """100 A records do not fit a UDP answer (dnsmasq sets TC); c-ares
    asks again over TCP, and the client gets all of them in one answer."""
    many = cluster.status["dns"]["many"]
    head, records = dnsquery(cluster, build_dir, many["name"], "A")
    assert head == "ok rcode=NOERROR tc=0 answers=100"
    assert sorted(r[2] for r in records) == sorted(many["addresses"])
    cname, found = resolve(cluster, build_dir, "many", "resolve4")
    assert cname == many["name"]
    assert sorted(a for a, _ in found) == sorted(many["addresses"])


def test_unknown_names(cluster, build_dir):
    # NXDOMAIN for every search step and the name itself: not found
    assert resolve(cluster, build_dir, "nope.default.svc.cluster.local").startswith(
        "error ENOENT")
    assert resolve(cluster, build_dir, "nope.default.svc.cluster.local.").startswith(
        "error ENOENT")
    # the last step (the bare name) is REFUSED by the cluster DNS: temporary
    assert resolve(cluster, build_dir, "nope-" + secrets.token_hex(3)).startswith("error EAGAIN")
    # a raw query returns the server's answer unchanged, errors included
    head, records = dnsquery(cluster, build_dir, "nope.default.svc.cluster.local", "A")
    assert head == "ok rcode=NXDOMAIN tc=0 answers=0" and records == []
    head, _ = dnsquery(cluster, build_dir, "example.com", "A")
    assert head == "ok rcode=REFUSED tc=0 answers=0"


def test_names_are_the_pods(cluster, build_dir):
    """The pod's /etc/hosts and nameserver answer, never the host's."""
    assert resolve(cluster, build_dir, "bear-pod") == ("bear-pod", [(cluster.pod_ip, 0)])
    # a name only the host's /etc/hosts knows
    with open("/etc/hosts") as f:
        host_names = {w for line in f if not line.lstrip().startswith("#")
                      for w in line.split()[1:]}
    with open(cluster.pod_path("/etc/hosts")) as f:
        pod_names = {w for line in f for w in line.split()[1:]}
    only_host = sorted(n for n in host_names - pod_names if "." not in n or len(n) < 60)
    if only_host:
        assert resolve(cluster, build_dir, only_host[0] + ".").startswith("error")
    # the query left from the pod's address to the cluster DNS
    marker = "podenv-probe-" + secrets.token_hex(4)
    dnsquery(cluster, build_dir, marker + ".cluster.local", "A")
    with open(cluster.status["dns"]["query_log"]) as f:
        log = [l for l in f if marker in l]
    assert log and all(f"from {cluster.pod_ip}" in l for l in log if "query[" in l)


def test_address_literals(cluster, build_dir):
    assert resolve(cluster, build_dir, "10.1.2.3") == ("10.1.2.3", [("10.1.2.3", 0)])
    assert resolve(cluster, build_dir, "fd00::1") == ("fd00::1", [("fd00::1", 0)])
    assert resolve(cluster, build_dir, "10.1.2.3", "resolve6").startswith("error ENOENT")


# --- a pod with another resolv.conf ------------------------------------------------


@contextmanager
def pod_resolv_conf(cluster, text):
    """Gives the pod another /etc/resolv.conf (None: none at all) while an
    agent starts; the agent reads it once, so it is restored right after."""
    path = cluster.pod_path("/etc/resolv.conf")
    with open(path) as f:
        saved = f.read()
    try:
        if text is None:
            os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(text)
        yield
    finally:
        with open(path, "w") as f:
            f.write(saved)


@contextmanager
def listening_agent(cluster, build_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(secrets.token_hex(32) + "\n")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen([os.path.join(build_dir, "podenv-agent"), "--pid", str(cluster.pod_pid),
                          "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file),
                          "-t", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not seen or "ready, listening" not in seen[-1]:
            seen.append(p.stderr.readline())
            assert seen[-1] and len(seen) < 20, seen
        yield ([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{port}",
                "--token-file", str(token_file)], p, seen)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def silent_nameserver(cluster):
    """A UDP and TCP port 53 in the client namespace that never answers
    (bound, so no ICMP port-unreachable gives the query away)."""
    code = ("import socket,time\n"
            f"u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('{cluster.client_ip}',53))\n"
            f"t=socket.socket();t.bind(('{cluster.client_ip}',53));t.listen(8)\n"
            "print('ready',flush=True)\ntime.sleep(300)\n")
    p = subprocess.Popen(["nsenter", "--net=" + cluster.netns_path("client"), "--", PYTHON, "-c",
                          code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield cluster.client_ip
    finally:
        p.kill()
        p.wait()


@pytest.mark.timeout(60)
def test_pending_query_does_not_block_the_agent(cluster, build_dir, tmp_path):
    with silent_nameserver(cluster) as ns, \
            pod_resolv_conf(cluster, f"nameserver {ns}\noptions timeout:2 attempts:1\n"), \
            listening_agent(cluster, build_dir, tmp_path) as (client, agent, seen):
        t0 = time.monotonic()
        slow = subprocess.Popen(client + ["resolve api.default.svc.cluster.local.",
                                          "dnsquery api.default.svc.cluster.local A"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        # another launcher, same agent, while the query waits
        t1 = time.monotonic()
        r = run(client + ["hostname", "stat /etc/hostname", "resolve bear-pod"], timeout=20)
        assert r.returncode == 0, r.stderr
        assert results(r)[0] == "ok bear-pod"
        assert time.monotonic() - t1 < 1.5
        assert slow.poll() is None  # still waiting for DNS
        out, err = slow.communicate(timeout=30)
        lines = results(subprocess.CompletedProcess([], 0, out, err))
        assert lines[0].startswith("error ETIMEDOUT"), out + err
        assert lines[1].startswith("error ETIMEDOUT"), out + err
        assert 3.5 < time.monotonic() - t0 < 15
        assert agent.poll() is None


def test_closing_with_a_query_in_flight(cluster, build_dir, tmp_path):
    """A launcher that goes away while its query waits: the late answer is
    dropped and the agent goes on serving."""
    with silent_nameserver(cluster) as ns, \
            pod_resolv_conf(cluster, f"nameserver {ns}\noptions timeout:1 attempts:1\n"), \
            listening_agent(cluster, build_dir, tmp_path) as (client, agent, seen):
        for _ in range(3):
            p = subprocess.Popen(client + ["resolve api", "dnsquery api A"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.2)
            p.kill()
            p.wait()
        time.sleep(2.5)  # every query times out after its session closed
        r = run(client + ["hostname"], timeout=20)
        assert results(r) == ["ok bear-pod"]
        assert agent.poll() is None


def test_pod_without_resolv_conf(cluster, build_dir, tmp_path):
    with pod_resolv_conf(cluster, None), \
            listening_agent(cluster, build_dir, tmp_path) as (client, agent, seen):
        assert any("no readable /etc/resolv.conf" in l for l in seen)
        r = run(client + ["resolve api", "dnsquery api.default.svc.cluster.local A",
                          "resolve bear-pod", "hostname"], timeout=20)
        lines = results(r)
        assert lines[0].startswith("error EHOSTUNREACH")
        assert lines[1].startswith("error EHOSTUNREACH")
        assert lines[2] == f"ok bear-pod {cluster.pod_ip} ttl=0"  # /etc/hosts still answers
        assert lines[3] == "ok bear-pod"
        assert agent.poll() is None


def test_malformed_queries_are_refused(cluster, build_dir, tmp_path):
    """DNS_QUERY payloads that are not one DNS question get EINVAL; the
    session goes on."""
    from agent_wire import hello_frame, read_frame
    with listening_agent(cluster, build_dir, tmp_path) as (client, agent, seen):
        token = bytes.fromhex(open(client[-1]).read().strip())
        port = int(client[4].rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello_frame(token))
        assert read_frame(s)[0] == 0x0002  # WELCOME
        good_q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + \
            b"\x03api\x07default\x03svc\x07cluster\x05local\x00" + struct.pack(">HH", 1, 1)
        bad = [
            b"",
            good_q[:11],
            good_q[:2] + b"\x81\x00" + good_q[4:],  # QR set: a response
            good_q[:4] + b"\x00\x02" + good_q[6:],  # two questions announced
            good_q[:12] + b"\xc0\x0c" + struct.pack(">HH", 1, 1),  # compression pointer
            good_q[:12] + b"\x40" + b"a" * 64 + b"\x00" + struct.pack(">HH", 1, 1),
            good_q[:-2],  # class cut short
        ]
        for i, q in enumerate(bad + [good_q]):
            payload = struct.pack("<I", len(q)) + q
            s.sendall(struct.pack("<IHHQ", len(payload), 0x0205, 0, 100 + i) + payload)
            t, flags, ident, body = read_frame(s)
            assert (t, ident) == (0x0205, 100 + i)
            status, = struct.unpack_from("<i", body)
            if i < len(bad):
                assert status == 22, (i, status)  # EINVAL
            else:
                assert status == 0
                answer = body[8:]  # status, blob length
                assert answer[:2] == b"\x12\x34"  # the client's own message id
                assert answer[2] & 0x80 and struct.unpack(">H", answer[6:8])[0] == 1
        s.close()
        assert agent.poll() is None
