"""The namespace mini cluster itself (tests/cluster/README.md).

These prove the harness the other end-to-end tests stand on: the pod's
namespaces, root filesystem, environment and app; the cluster services and
DNS as the pod sees them; the client's path to the pod; that nothing of it
reaches the host; and that `down` leaves nothing behind.
"""
import hashlib
import ipaddress
import json
import os
import stat
import time

import pytest

from conftest import cluster_cmd, run, Cluster

SHORT = 30


# --- the pod -------------------------------------------------------------------

def test_status_describes_a_running_cluster(cluster):
    r = cluster_cmd("status", instance=cluster.instance, timeout=SHORT)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["pod"]["pid"] == cluster.pod_pid
    assert os.path.exists(f"/proc/{cluster.pod_pid}")
    for role in ("pod", "services", "client", "net"):
        name = st["namespaces"][role]
        assert name.startswith("podenv-"), name
        assert os.path.exists(f"/run/netns/{name}"), name
    assert len(st["fixtures"]["big_sha256"]) == 64
    v4 = ipaddress.ip_network(st["ipv4_range"])
    v6 = ipaddress.ip_network(st["ipv6_range"])
    assert v4.is_private and v6.is_private
    for addr in (cluster.pod_ip, cluster.client_ip, cluster.dns_ip,
                 st["services"]["api"]["ipv4"], st["services"]["echo"]["ipv4"]):
        assert ipaddress.ip_address(addr) in v4
    for addr in (cluster.pod_ip6, cluster.client_ip6, cluster.dns_ip6, st["services"]["db"]["ipv6"]):
        assert ipaddress.ip_address(addr) in v6


def test_pod_has_its_own_net_mnt_uts_namespaces(cluster):
    pid = cluster.pod_pid
    for ns in ("net", "mnt", "uts"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(cluster.netns_path("pod")).st_ino
    # The pod's app is the long-running process itself.
    assert os.readlink(f"/proc/{pid}/exe").endswith("podapp")


def test_pod_hostname(cluster):
    r = cluster.in_pod("hostname", timeout=SHORT, check=True)
    assert r.stdout.strip() == "bear-pod"
    assert open(cluster.pod_path("/etc/hostname")).read().strip() == "bear-pod"
    assert os.uname().nodename != "bear-pod"


def test_pod_environ_is_exact(cluster):
    raw = open(f"/proc/{cluster.pod_pid}/environ", "rb").read()
    env = dict(kv.decode().split("=", 1) for kv in raw.split(b"\0") if kv)
    assert env == cluster.pod["env"]
    for key in ("DATABASE_USER", "DATABASE_PASSWORD", "PUBLIC_ENV", "MY_APP_COLOR", "PATH", "HOME"):
        assert env.get(key), key
    assert env["HOME"] == "/root"


def test_pod_root_is_its_own_filesystem(cluster):
    os_release = open(cluster.pod_path("/etc/os-release")).read()
    assert "ID=bearos" in os_release and 'NAME="Bear OS"' in os_release
    assert "ID=bearos" not in open("/etc/os-release").read()
    # Inside the pod (nsenter -a takes its root) the same file shows.
    r = cluster.in_pod("cat", "/etc/os-release", timeout=SHORT, check=True)
    assert r.stdout == os_release
    assert os.readlink(cluster.pod_path("/bin/sh")) == "/bin/busybox"
    r = cluster.in_pod("/bin/sh", "-c", "echo $((6*7))", timeout=SHORT, check=True)
    assert r.stdout.strip() == "42"


def test_pod_fixtures(cluster):
    fx = cluster.fixtures
    assert open(cluster.pod_path(fx["config"])).read() == fx["config_text"]
    assert os.readlink(cluster.pod_path(fx["rootlink"])) == "/"
    # Through the pod's own root the link leads back to the pod's root.
    r = cluster.in_pod("cat", "/app/rootlink/etc/hostname", timeout=SHORT, check=True)
    assert r.stdout.strip() == "bear-pod"
    st = os.lstat(cluster.pod_path(fx["secret"]))
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0
    assert open(cluster.pod_path(fx["secret"])).read() == fx["secret_text"]
    files = 0
    for _, _, names in os.walk(cluster.pod_path(fx["tree"])):
        files += len(names)
    assert files == fx["tree_files"] == 2000
    assert open(cluster.pod_path(fx["tree"] + "/d07/f13")).read() == "tree d07/f13\n"


def test_pod_big_file_sha256(cluster):
    fx = cluster.fixtures
    h = hashlib.sha256()
    with open(cluster.pod_path(fx["big_file"]), "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert os.path.getsize(cluster.pod_path(fx["big_file"])) == fx["big_size"] == 64 << 20
    assert h.hexdigest() == fx["big_sha256"]
    r = cluster.in_pod("sha256sum", fx["big_file"], timeout=SHORT, check=True)
    assert r.stdout.split()[0] == fx["big_sha256"]


def test_secret_is_readable_by_root_only(cluster):
    ok = cluster.in_pod("cat", "/app/secret.txt", timeout=SHORT)
    assert ok.returncode == 0 and ok.stdout == cluster.fixtures["secret_text"]
    denied = cluster.in_pod("cat", "/app/secret.txt", uid=1000, timeout=SHORT)
    assert denied.returncode != 0
    assert "ermission denied" in denied.stderr
    # The same user reads the public config (so the denial is about the mode).
    assert cluster.in_pod("cat", "/app/config.yaml", uid=1000, timeout=SHORT).returncode == 0


def test_pod_resolv_conf(cluster):
    text = open(cluster.pod_path("/etc/resolv.conf")).read()
    lines = [l.split() for l in text.splitlines() if l.strip()]
    assert ["search", "default.svc.cluster.local", "svc.cluster.local", "cluster.local"] in lines
    assert ["options", "ndots:5"] in lines
    assert ["nameserver", cluster.dns_ip] in lines


def test_pod_has_no_route_out_of_the_cluster(cluster):
    for fam in ("-4", "-6"):
        r = run(["ip", fam, "-n", cluster.netns("pod"), "route"], timeout=SHORT, check=True)
        assert "default" not in r.stdout, r.stdout
    r = run(["ip", "-n", cluster.netns("pod"), "-j", "addr"], timeout=SHORT, check=True)
    addrs = {a["local"] for l in json.loads(r.stdout) for a in l.get("addr_info", [])}
    assert {cluster.pod_ip, cluster.pod_ip6} <= addrs


# --- DNS -----------------------------------------------------------------------

def dig(cluster, *args, server=None):
    r = cluster.in_netns("pod", "dig", "+time=2", "+tries=2", "@" + (server or cluster.dns_ip), *args,
                         timeout=SHORT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("name", ["api", "db", "echo"])
def test_dns_answers_service_names(cluster, name):
    fqdn = f"{name}.default.svc.cluster.local"
    want = cluster.status["dns"]["names"][fqdn]
    assert dig(cluster, "+short", fqdn, "A").split() == [want["A"]]
    assert dig(cluster, "+short", fqdn, "AAAA").split() == [want["AAAA"]]
    # The DNS server answers on its IPv6 address too.
    assert dig(cluster, "+short", fqdn, "A", server=cluster.dns_ip6).split() == [want["A"]]
    assert want["A"] == cluster.services[name]["ipv4"]


def test_dns_srv_record(cluster):
    srv = cluster.status["dns"]["srv"]
    out = dig(cluster, "+short", srv["name"], "SRV").split()
    assert out[2] == str(srv["port"]) and out[3].rstrip(".") == srv["target"]


def test_dns_unknown_cluster_name_is_nxdomain(cluster):
    out = dig(cluster, "nosuch.default.svc.cluster.local", "A")
    assert "status: NXDOMAIN" in out


def test_dns_many_records_truncate_udp(cluster):
    many = cluster.status["dns"]["many"]
    udp = dig(cluster, "+noedns", "+ignore", many["name"], "A")
    flags = udp.split("flags:", 1)[1].split(";", 1)[0].split()
    assert "tc" in flags, udp
    tcp = dig(cluster, "+tcp", "+short", many["name"], "A").split()
    assert sorted(tcp) == sorted(many["addresses"]) and len(tcp) == many["count"] >= 60


def test_pod_resolves_short_names_through_search_domains(cluster):
    # busybox nslookup inside the pod reads the pod's resolv.conf.
    r = cluster.in_pod("nslookup", "api", timeout=SHORT)
    assert "api.default.svc.cluster.local" in r.stdout, r.stdout + r.stderr
    assert cluster.services["api"]["ipv4"] in r.stdout
    # wget resolves "db" the way a program does (resolver + search list).
    r = cluster.in_pod("wget", "-q", "-O-", "http://db/through-search", timeout=SHORT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cluster-api /through-search"


def test_dns_query_log_records_pod_queries(cluster):
    name = f"log-{os.getpid()}-{time.time_ns()}.default.svc.cluster.local"
    dig(cluster, name, "A")
    log = open(cluster.status["dns"]["query_log"]).read()
    assert name in log


# --- cluster services, from the pod ------------------------------------------------

SERVICE_PROBE = r"""
import hashlib, json, socket, sys, http.client, concurrent.futures as cf
api, api6, echo, db, port_echo, port_udp = sys.argv[1:7]
out = {}
c = http.client.HTTPConnection(api, 80, timeout=10)
for p in ("/a", "/b/c?d=1"):
    c.request("GET", p); r = c.getresponse(); out["get" + p] = [r.status, r.read().decode()]
c.request("POST", "/echo", body=b"x" * 100000); out["post_echo_len"] = len(c.getresponse().read())
c.request("GET", "/bytes/8388608"); out["bytes"] = hashlib.sha256(c.getresponse().read()).hexdigest()
c6 = http.client.HTTPConnection(api6, 80, timeout=10)
c6.request("GET", "/v6"); out["get6"] = c6.getresponse().read().decode()
def echo_once(i, n=4096):
    with socket.create_connection((echo, int(port_echo)), timeout=10) as s:
        data = bytes([i % 256]) * n
        s.sendall(data); s.shutdown(socket.SHUT_WR)
        got = b""
        while (b := s.recv(65536)): got += b
        return got == data
with socket.create_connection((echo, int(port_echo)), timeout=10) as s:
    big = bytes(range(256)) * 16384  # 4 MiB
    s.sendall(big); s.shutdown(socket.SHUT_WR)
    h = hashlib.sha256()
    n = 0
    while (b := s.recv(1 << 20)): h.update(b); n += len(b)
    out["echo_big"] = [n, h.hexdigest() == hashlib.sha256(big).hexdigest()]
with cf.ThreadPoolExecutor(50) as ex:
    out["echo_concurrent_ok"] = sum(ex.map(echo_once, range(300)))
with socket.create_connection((db, 5432), timeout=10) as s:
    s.sendall(b"db-ping"); out["db_echo"] = s.recv(100).decode()
for host in (echo, sys.argv[7]):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as u:
        u.settimeout(5); u.sendto(b"udp-ping " + host.encode(), (host, int(port_udp)))
        out["udp " + host] = u.recv(2000).decode()
print(json.dumps(out))
"""


def test_services_answer_from_the_pod(cluster):
    s = cluster.services
    out = cluster.python_in_netns(
        "pod", SERVICE_PROBE, s["api"]["ipv4"], s["api"]["ipv6"], s["echo"]["ipv4"], s["db"]["ipv4"],
        str(s["echo"]["tcp_port"]), str(s["echo"]["udp_port"]), s["echo"]["ipv6"], timeout=90)
    assert out["get/a"] == [200, "cluster-api /a"]
    assert out["get/b/c?d=1"] == [200, "cluster-api /b/c?d=1"]
    assert out["get6"] == "cluster-api /v6"
    assert out["post_echo_len"] == 100000
    pattern = bytes(range(256)) * 32768
    assert out["bytes"] == hashlib.sha256(pattern).hexdigest()
    assert out["echo_big"] == [4 << 20, True]
    assert out["echo_concurrent_ok"] == 300
    assert out["db_echo"] == "db-ping"
    assert out["udp " + s["echo"]["ipv4"]] == "udp-ping " + s["echo"]["ipv4"]
    assert out["udp " + s["echo"]["ipv6"]] == "udp-ping " + s["echo"]["ipv6"]


def test_pod_busybox_reaches_api_by_name(cluster):
    r = cluster.in_pod("wget", "-q", "-O-", "http://api.default.svc.cluster.local/full", timeout=SHORT)
    assert r.returncode == 0 and r.stdout == "cluster-api /full", r.stderr


# --- the pod's own app, from the client -----------------------------------------

POD_APP_PROBE = r"""
import json, socket, sys, http.client
host, port = sys.argv[1], int(sys.argv[2])
out = {}
c = http.client.HTTPConnection(host, port, timeout=10)
bodies, socks = [], set()
for i in range(5):
    c.request("GET", f"/k{i}"); r = c.getresponse(); bodies.append(r.read().decode())
    socks.add(id(c.sock))
out["keepalive"] = [bodies, len(socks), r.getheader("Connection")]
c.request("POST", "/post", body=b"y" * 300000); out["post"] = c.getresponse().read().decode()
with socket.create_connection((host, port), timeout=10) as s:
    s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
              + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while (b := s.recv(65536)): data += b
out["pipelined"] = data.count(b"pod-original")
print(json.dumps(out))
"""


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_pod_app_answers_the_client(cluster, family):
    host = cluster.pod_ip if family == "ipv4" else cluster.pod_ip6
    out = cluster.python_in_netns("client", POD_APP_PROBE, host, str(cluster.pod["port"]))
    bodies, nsocks, conn = out["keepalive"]
    assert bodies == ["pod-original"] * 5
    assert nsocks == 1 and conn == "keep-alive"
    assert out["post"] == "pod-original"
    assert out["pipelined"] == 51
    log = open(cluster.pod["log"]).read()
    assert "podapp: GET /k4" in log and "podapp: GET /last" in log


def test_pod_app_answers_inside_the_pod(cluster):
    r = cluster.in_pod("wget", "-q", "-O-", "http://127.0.0.1/self", timeout=SHORT)
    assert r.returncode == 0 and r.stdout == "pod-original", r.stderr


def test_client_is_not_the_pod(cluster):
    client_ns = os.stat(cluster.netns_path("client")).st_ino
    assert client_ns != os.stat(f"/proc/{cluster.pod_pid}/ns/net").st_ino
    r = run(["ip", "-n", cluster.netns("client"), "-j", "addr"], timeout=SHORT, check=True)
    addrs = {a["local"] for l in json.loads(r.stdout) for a in l.get("addr_info", [])}
    assert cluster.client_ip in addrs and cluster.pod_ip not in addrs


# --- isolation from the host ------------------------------------------------------

def cluster_addresses(cluster):
    s = cluster.services
    out = [cluster.pod_ip, cluster.pod_ip6, cluster.client_ip, cluster.client_ip6]
    for name in ("dns", "api", "db", "echo"):
        out += [s[name]["ipv4"], s[name]["ipv6"]]
    return out


def test_host_has_no_interface_or_route_into_the_cluster(cluster):
    v4 = ipaddress.ip_network(cluster.status["ipv4_range"])
    v6 = ipaddress.ip_network(cluster.status["ipv6_range"])
    links = json.loads(run(["ip", "-j", "addr"], timeout=SHORT, check=True).stdout)
    for link in links:
        for a in link.get("addr_info", []):
            assert ipaddress.ip_address(a["local"]) not in v4 and ipaddress.ip_address(a["local"]) not in v6, \
                (link["ifname"], a["local"])
    host_ifnames = {l["ifname"] for l in links}
    # Every cluster link lives in a cluster namespace, none in the host.
    for role in ("net", "pod", "services", "client"):
        ns_links = json.loads(run(["ip", "-n", cluster.netns(role), "-j", "link"], timeout=SHORT,
                                  check=True).stdout)
        for l in ns_links:
            if l["ifname"] not in ("lo", "eth0"):
                assert l["ifname"] not in host_ifnames, l["ifname"]
    # No host route delivers a cluster address locally or onto a cluster link.
    for addr in cluster_addresses(cluster):
        r = run(["ip", "-j", "route", "get", addr], timeout=SHORT)
        if r.returncode != 0:
            continue  # unreachable: fine
        route = json.loads(r.stdout)[0]
        assert route.get("type") != "local", route
        assert route.get("dev") not in ("lo", "br0") and not route.get("dev", "").startswith("v-"), route
        assert route.get("prefsrc") is None or ipaddress.ip_address(route["prefsrc"]) not in v4, route


def listening(path, port):
    """Listening TCP sockets (state 0A) or bound UDP sockets on port, from a /proc/net table."""
    found = []
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        return found
    for l in lines:
        f = l.split()
        if int(f[1].rsplit(":", 1)[1], 16) == port and (f[3] == "0A" or "udp" in path):
            found.append(l)
    return found


def test_services_do_not_listen_in_the_host(cluster):
    # The cluster's services listen in their namespace, never in the host's:
    # so nothing in the host answers them, and no packet is needed to show it
    # (the host's default route leads off this machine).
    svc_pid = cluster.services["pids"]["services"]
    dns_pid = cluster.services["pids"]["dnsmasq"]
    assert os.stat(f"/proc/{svc_pid}/ns/net").st_ino == os.stat(cluster.netns_path("services")).st_ino
    assert os.stat(f"/proc/{dns_pid}/ns/net").st_ino == os.stat(cluster.netns_path("services")).st_ino
    port = cluster.services["echo"]["tcp_port"]
    assert listening(f"/proc/{svc_pid}/net/tcp6", port), "echo not listening in the services namespace"
    assert listening(f"/proc/{svc_pid}/net/udp6", cluster.services["echo"]["udp_port"])
    assert not listening("/proc/self/net/tcp6", port) and not listening("/proc/self/net/tcp", port)
    assert not listening("/proc/self/net/udp6", cluster.services["echo"]["udp_port"])
    # From the host, the services' addresses are not local: connecting would
    # leave through the host's own routes, not reach the cluster.
    for addr in cluster_addresses(cluster):
        r = run(["ip", "-j", "route", "get", addr], timeout=SHORT)
        if r.returncode == 0:
            assert json.loads(r.stdout)[0].get("type") != "local"
    # The pod, seen from inside, answers on the same addresses.
    assert listening(f"/proc/{cluster.pod_pid}/net/tcp6", cluster.pod["port"])


def test_services_are_unreachable_from_a_namespace_outside_the_cluster(cluster):
    # A fresh namespace with nothing wired (like the host has no link into
    # the cluster) gets no answer; the same probe from the pod does.
    ns = "podenv-cltest-" + str(os.getpid())
    run(["ip", "netns", "add", ns], timeout=SHORT, check=True)
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"], timeout=SHORT, check=True)
        code = ("import socket,sys\n"
                "try:\n socket.create_connection((sys.argv[1], 80), timeout=3).close(); print('open')\n"
                "except OSError as e: print('err', e.errno)\n")
        api = cluster.services["api"]["ipv4"]
        out = run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code, api], timeout=SHORT,
                  check=True).stdout
        assert out.startswith("err"), out
        assert cluster.in_netns("pod", "/usr/bin/python3", "-c", code, api, timeout=SHORT,
                                check=True).stdout.strip() == "open"
    finally:
        run(["ip", "netns", "del", ns], timeout=SHORT)


# --- lifecycle: leave nothing behind ----------------------------------------------

def running(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers(instance_status):
    """What of a cluster is still on the machine (empty when all is gone)."""
    st = instance_status
    left = []
    for name in st["namespaces"].values():
        if os.path.exists(f"/run/netns/{name}"):
            left.append("netns " + name)
    for l in run(["ip", "netns", "list"], timeout=SHORT).stdout.splitlines():
        if l.split() and l.split()[0] in st["namespaces"].values():
            left.append("ip netns " + l)
    if os.path.exists(st["state_dir"]):
        left.append("state dir " + st["state_dir"])
    for l in open("/proc/self/mountinfo"):
        mp = l.split()[4]
        if mp.startswith(st["state_dir"]) or any(mp.endswith("/" + n) for n in st["namespaces"].values()):
            left.append("mount " + mp)
    for pid in [st["pod"]["pid"], *st["services"]["pids"].values()]:
        if running(pid):
            left.append(f"process {pid}")
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
        except OSError:
            continue
        if st["state_dir"].encode() + b"/" in cmd or st["state_dir"].encode() + b"\0" in cmd:
            left.append(f"process {p}: {cmd[:80]!r}")
    links = json.loads(run(["ip", "-j", "link"], timeout=SHORT, check=True).stdout)
    left += ["host link " + l["ifname"] for l in links if l["ifname"].startswith("v-")]
    return left


@pytest.mark.timeout(300)
def test_up_twice_then_down_leaves_nothing(cluster):
    # A separate instance, so the session's cluster stays up.
    inst = f"lk{os.getpid() % 100000}"
    try:
        first = cluster_cmd("up", instance=inst, timeout=120)
        assert first.returncode == 0, first.stderr
        st1 = json.loads(first.stdout)
        assert st1["namespaces"]["pod"] == f"podenv-{inst}-pod"
        assert cluster_cmd("status", instance=inst, timeout=SHORT).returncode == 0
        second = cluster_cmd("up", instance=inst, timeout=120)
        assert second.returncode == 0, second.stderr
        st2 = json.loads(second.stdout)
        # up again replaced the first cluster's processes.
        assert st2["pod"]["pid"] != st1["pod"]["pid"]
        for pid in [st1["pod"]["pid"], *st1["services"]["pids"].values()]:
            assert not running(pid), pid
        # The second cluster works: its pod answers its client.
        c2 = Cluster(st2, inst)
        out = c2.python_in_netns("client", POD_APP_PROBE, c2.pod_ip, str(c2.pod["port"]))
        assert out["pipelined"] == 51
        # Crash: kill everything hard, then down must still clean up.
        for pid in [st2["pod"]["pid"], *st2["services"]["pids"].values()]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        assert cluster_cmd("status", instance=inst, timeout=SHORT).returncode != 0
        down = cluster_cmd("down", instance=inst, timeout=60)
        assert down.returncode == 0, down.stderr
        assert leftovers(st2) == []
        assert leftovers(st1) == []
        assert cluster_cmd("status", instance=inst, timeout=SHORT).returncode != 0
        # down on a cluster that is not up is fine too.
        assert cluster_cmd("down", instance=inst, timeout=60).returncode == 0
    finally:
        cluster_cmd("down", instance=inst, timeout=60)
    # The session's cluster was not touched.
    assert cluster_cmd("status", instance=cluster.instance, timeout=SHORT).returncode == 0
    assert os.path.exists(f"/proc/{cluster.pod_pid}")
