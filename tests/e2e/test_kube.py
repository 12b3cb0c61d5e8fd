"""podenv's Kubernetes path end to end against the fake API server
(tests/kube/README.md) and the mini cluster: kubeconfig auth variants,
target resolution and `podenv ls`, the agent Job built from agent.*, the
WebSocket port-forward the link rides on, cleanup per ttl, and every error
path with one line, a non-zero exit and nothing left behind."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "kube"))
import fakekube  # noqa: E402
import pki  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def fake(cluster, build_dir):
    tmp = tempfile.mkdtemp(prefix="podenv-kube-")
    f = fakekube.FakeAPI(os.path.join(tmp, "fake"), agent=os.path.join(build_dir, "podenv-agent"),
                         pod_pid=cluster.pod_pid)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        left = f.agent_pids_left()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"agents left running: {left}"


@pytest.fixture(autouse=True)
def _reset(request):
    yield
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").control(
            job_failure=None, forbid=[], portforward="ok", agent_start_delay=0.0,
            ephemeral_containers=True, node_pods=110)


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return str(h)


def podenv(build_dir, *args, kubeconfig=None, home="/nonexistent", env=None, config=None,
           tmp_path=None, timeout=90):
    cmd = [os.path.join(build_dir, "podenv"), *args]
    if config is not None:
        path = os.path.join(str(tmp_path), "podenv.json")
        with open(path, "w") as f:
            json.dump(config, f)
        # the config file goes right after the subcommand
        cmd = cmd[:2] + ["-f", path] + cmd[2:]
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
    if kubeconfig:
        e["KUBECONFIG"] = kubeconfig
    e.update(env or {})
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=e, cwd="/tmp")


def jobs(fake):
    return [o["metadata"]["name"] for o in fake.state()["objects"]["jobs"]]


def received_jobs(fake):
    return [r for r in fake.state()["received"] if r["resource"] == "jobs"]


def live_agents(fake):
    return [a for a in fake.state()["agents"] if a["alive"]]


def wait_for(cond, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def one_line_error(r):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("podenv: "), r.stderr
    return lines[0]


def nothing_left(fake, before_jobs):
    """No new Job stays, and no agent process runs."""
    wait_for(lambda: set(jobs(fake)) <= set(before_jobs), 10, "the agent Job to go")
    wait_for(lambda: not live_agents(fake), 10, "the agents to stop")


AGENT_CFG = {
    "image": "registry.test/podenv-agent:e2e",
    "image_pull_policy": "Never",
    "labels": {"team": "bears", "podenv-e2e": "yes"},
    "annotations": {"bears.test/why": "e2e"},
    "tolerations": [{"key": "bears", "operator": "Equal", "value": "yes",
                     "effect": "NoSchedule"}],
    "resources": {"requests": {"cpu": "2m", "memory": "3Mi"},
                  "limits": {"cpu": "200m", "memory": "64Mi"}},
    "ttl": 1,
    "communication_timeout": 1,
    "disabled_capabilities": ["NET_RAW", "CAP_NET_ADMIN"],
    "service_account": "podenv-agent-sa",
    "image_pull_secrets": [{"name": "regcred"}],
    "security_context": {"seccompProfile": {"type": "RuntimeDefault"}},
}


# --- the whole flow --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["pod/bear-pod", "deployment/bear", "deployment/bear-expr",
                                    "label/app=bear"])
def test_exec_through_the_api_server(fake, build_dir, tmp_path, target):
    before = set(jobs(fake))
    n_received = len(received_jobs(fake))
    r = podenv(build_dir, "exec", "-t", target, "--", "cat", "/etc/hostname",
               kubeconfig=fake.kubeconfig["token"], config={"agent": AGENT_CFG},
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    assert r.stderr == ""

    # What the fake API server received: the Job, as configured.
    got = received_jobs(fake)[n_received:]
    assert len(got) == 1, got
    job = got[0]["body"]
    assert got[0]["user"] == "podenv-token-user"
    name = job["metadata"]["name"]
    assert name.startswith("podenv-agent-")
    assert job["metadata"]["labels"]["team"] == "bears"
    assert job["metadata"]["annotations"] == {"bears.test/why": "e2e"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 1
    tmpl = job["spec"]["template"]
    assert tmpl["metadata"]["labels"]["podenv-e2e"] == "yes"
    assert tmpl["metadata"]["annotations"] == {"bears.test/why": "e2e"}
    spec = tmpl["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["hostPID"] is True
    assert spec["nodeName"] == "podenv-node"
    assert spec["tolerations"] == AGENT_CFG["tolerations"]
    assert spec["serviceAccountName"] == "podenv-agent-sa"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["securityContext"] == AGENT_CFG["security_context"]
    (c,) = spec["containers"]
    assert c["image"] == "registry.test/podenv-agent:e2e"
    assert c["imagePullPolicy"] == "Never"
    assert c["resources"] == AGENT_CFG["resources"]
    assert c["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE", "SYS_ADMIN"]
    argv = c["command"] + c["args"]
    assert argv[argv.index("--container-id") + 1] == fake.info["container_ids"]["bear-pod/bear"]
    assert argv[argv.index("--communication-timeout") + 1] == "1"
    # Only the token's digest is in the pod spec (readers of Jobs cannot
    # use the agent); the agent accepted podenv's token against it.
    assert not [e for e in c["env"] if e["name"] == "PODENV_AGENT_TOKEN"]
    (tok,) = [e["value"] for e in c["env"] if e["name"] == "PODENV_AGENT_TOKEN_SHA256"]
    assert len(tok) == 64 and tok not in r.stderr

    # Cleaned up per ttl: the agent exits after its communication timeout,
    # then ttlSecondsAfterFinished removes the Job (not podenv).
    wait_for(lambda: any(d["name"] == name and d["reason"] == "ttl"
                         for d in fake.state()["deleted"]), 20, "the ttl deletion")
    assert not any(d["name"] == name and d["reason"] == "api" for d in fake.state()["deleted"])
    nothing_left(fake, before)


def test_fresh_token_per_session(fake, build_dir, tmp_path):
    n = len(received_jobs(fake))
    for _ in range(2):
        r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                   kubeconfig=fake.kubeconfig["token"], config={"agent": AGENT_CFG},
                   tmp_path=tmp_path)
        assert r.returncode == 0, r.stderr
    toks = [e["value"] for j in received_jobs(fake)[n:]
            for e in j["body"]["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert len(toks) == 2 and toks[0] != toks[1]


def test_ephemeral_agent(fake, build_dir, tmp_path):
    cfg = {"agent": {"ephemeral": True, "communication_timeout": 1, "image": "e.test/agent:1"}}
    before = set(jobs(fake))
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=fake.kubeconfig["token"], config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    patch = [x for x in fake.state()["received"]
             if x["resource"] == "pods/ephemeralcontainers"][-1]
    (c,) = patch["body"]["spec"]["ephemeralContainers"]
    assert c["targetContainerName"] == "bear" and c["image"] == "e.test/agent:1"
    assert "resources" not in c
    assert set(jobs(fake)) <= before


def test_ls(fake, build_dir):
    r = podenv(build_dir, "ls", kubeconfig=fake.kubeconfig["token"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "pod/bear-multi/container/app", "pod/bear-multi/container/sidecar",
        "pod/bear-pod/container/bear", "deployment/bear", "deployment/bear-expr",
        "deployment/bear-multi"]
    r = podenv(build_dir, "ls", "-o", "json", "-n", "kube-system",
               kubeconfig=fake.kubeconfig["token"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


# --- auth variants -------------------------------------------------------------------------


def exec_plugin_kubeconfig(fake, tmp_path, token=None):
    script = tmp_path / "plugin.sh"
    log = tmp_path / "plugin.log"
    script.write_text("#!/bin/sh\n"
                      f"echo run >> {log}\n"
                      "cat <<EOF\n"
                      '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
                      f'"status":{{"token":"{token or fake.token}",'
                      '"expirationTimestamp":"2099-01-01T00:00:00Z"}}\n'
                      "EOF\n")
    script.chmod(0o755)
    with open(fake.kubeconfig["token"]) as f:
        text = f.read()
    kc = tmp_path / "kubeconfig-exec.yaml"
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
           "clusters": [{"name": "fake", "cluster": {
               "server": fake.url,
               "certificate-authority-data": text.split("certificate-authority-data:")[1]
               .split()[0]}}],
           "users": [{"name": "plug", "user": {"exec": {
               "apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
               "interactiveMode": "Never"}}}],
           "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "plug"}}]}
    kc.write_text(json.dumps(cfg))
    return str(kc), log


@pytest.mark.parametrize("variant", ["token", "token-file", "cert", "cert-files"])
def test_auth_kubeconfig(fake, build_dir, variant):
    n = len(fake.requests())
    r = podenv(build_dir, "ls", kubeconfig=fake.kubeconfig[variant])
    assert r.returncode == 0, r.stderr
    assert "pod/bear-pod/container/bear" in r.stdout.splitlines()
    users = {q["user"] for q in fake.requests()[n:] if not q["path"].startswith("/fake/")}
    assert users == {"podenv-cert-user" if variant.startswith("cert") else "podenv-token-user"}


def test_auth_cert_exec_end_to_end(fake, build_dir, tmp_path):
    """The port-forward carries the client certificate too."""
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=fake.kubeconfig["cert"], config={"agent": {"communication_timeout": 1}},
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    ups = [q for q in fake.requests() if q.get("upgrade") and q["user"] == "podenv-cert-user"]
    assert ups, "no port-forward upgrade as the certificate's user"


def test_auth_exec_plugin(fake, build_dir, tmp_path):
    kc, log = exec_plugin_kubeconfig(fake, tmp_path)
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=kc, config={"agent": {"communication_timeout": 1}},
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    # cached until its expiry: one run for the whole session
    assert log.read_text().count("run") == 1


def test_auth_exec_plugin_refused(fake, build_dir, tmp_path):
    kc, _ = exec_plugin_kubeconfig(fake, tmp_path, token="not-the-token")
    line = one_line_error(podenv(build_dir, "ls", kubeconfig=kc))
    assert "401" in line and "refused the credentials" in line


def test_auth_in_cluster(fake, build_dir, tmp_path):
    """No kubeconfig: the service account of a pod (token, ca.crt, namespace)
    under /var/run/secrets, in a private mount namespace."""
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(fake.token + "\n")
    shutil.copy(fake.info["ca"], sa / "ca.crt")
    (sa / "namespace").write_text("default")
    script = ("mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io && "
              f"cp -r {sa} /run/secrets/kubernetes.io/serviceaccount && "
              f"exec {os.path.join(build_dir, 'podenv')} ls")
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
         "KUBERNETES_SERVICE_HOST": "127.0.0.1",
         "KUBERNETES_SERVICE_PORT": str(fake.info["port"])}
    n = len(fake.requests())
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pod/bear-pod/container/bear" in r.stdout.splitlines()
    assert {q["user"] for q in fake.requests()[n:]
            if not q["path"].startswith("/fake/")} == {"podenv-token-user"}


def test_wrong_ca(fake, build_dir, tmp_path):
    other_crt, _ = pki.make_ca(str(tmp_path / "other"), "other-ca")
    with open(fake.kubeconfig["token"]) as f:
        text = f.read()
    with open(other_crt, "rb") as f:
        wrong = base64.b64encode(f.read()).decode()
    cur = text.split("certificate-authority-data:")[1].split()[0]
    kc = tmp_path / "wrong-ca.yaml"
    kc.write_text(text.replace(cur, wrong))
    line = one_line_error(podenv(build_dir, "ls", kubeconfig=str(kc)))
    assert "certificate" in line and "accept_invalid_certificates" in line
    r = podenv(build_dir, "ls", "--accept-invalid-certificates", kubeconfig=str(kc))
    assert r.returncode == 0, r.stderr
    assert "deployment/bear" in r.stdout.splitlines()
    # and the whole flow, port-forward included
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=str(kc), config={"accept_invalid_certificates": True,
                                            "agent": {"communication_timeout": 1}},
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"


# --- targets and their errors ----------------------------------------------------------------


@pytest.mark.parametrize("target,words", [
    ("pod/nope", ["no pod \"nope\" in namespace default", "bear-pod"]),
    ("deployment/nope", ["no deployment \"nope\"", "deployment/bear"]),
    ("pod/bear-multi", ["several containers", "app, sidecar", "pod/bear-multi/container/NAME"]),
    ("pod/bear-pod/container/nope", ["no container \"nope\"", "containers: bear"]),
    ("pod/bear-pending", ["not running", "Pending", "ContainerCreating"]),
    ("deployment/bear-empty", ["no running, ready pod", "none"]),
    ("container/nope", ["no running pod", "\"nope\"", "app, sidecar, bear)"]),
])
def test_target_errors(fake, build_dir, target, words):
    before, n = set(jobs(fake)), len(received_jobs(fake))
    line = one_line_error(podenv(build_dir, "exec", "-t", target, "--", "true",
                                 kubeconfig=fake.kubeconfig["token"]))
    for w in words:
        assert w in line, line
    assert len(received_jobs(fake)) == n, "a Job was created for a bad target"
    assert set(jobs(fake)) <= before


def test_container_targets(fake, build_dir, tmp_path):
    for target in ("pod/bear-multi/container/app", "container/bear", "containername/app"):
        r = podenv(build_dir, "exec", "-t", target, "--", "cat", "/etc/hostname",
                   kubeconfig=fake.kubeconfig["token"],
                   config={"agent": {"communication_timeout": 1}}, tmp_path=tmp_path)
        assert r.returncode == 0, (target, r.stderr)
        assert r.stdout == "bear-pod\n"


def test_target_namespace_default_from_context(fake, build_dir, tmp_path):
    with open(fake.kubeconfig["token"]) as f:
        text = f.read()
    kc = tmp_path / "ns.yaml"
    kc.write_text(text.replace("namespace: default", "namespace: kube-system"))
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=str(kc)))
    assert "namespace kube-system" in line
    r = podenv(build_dir, "ls", "-n", "default", kubeconfig=str(kc))
    assert "pod/bear-pod/container/bear" in r.stdout.splitlines()


# --- failures: one line, non-zero, nothing left -------------------------------------------------


def test_unknown_context(fake, build_dir):
    line = one_line_error(podenv(build_dir, "exec", "--context", "nope", "-t", "pod/bear-pod",
                                 "--", "true", kubeconfig=fake.kubeconfig["token"]))
    assert "context \"nope\"" in line and "fake" in line


def test_api_server_down(fake, build_dir, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with open(fake.kubeconfig["token"]) as f:
        text = f.read()
    kc = tmp_path / "down.yaml"
    kc.write_text(text.replace(fake.url, f"https://127.0.0.1:{port}"))
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=str(kc)))
    assert "cannot reach the Kubernetes API server" in line and str(port) in line


def test_forbidden_job(fake, build_dir):
    before = set(jobs(fake))
    fake.control(forbid=["create:jobs"])
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"]))
    assert "403" in line and 'cannot create resource "jobs"' in line
    nothing_left(fake, before)


def test_agent_never_ready(fake, build_dir, tmp_path):
    before = set(jobs(fake))
    fake.control(agent_start_delay=30.0)
    t0 = time.time()
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"],
                                 config={"agent": {"startup_timeout": 2}}, tmp_path=tmp_path))
    assert time.time() - t0 < 15
    assert "not ready within 2 s (agent.startup_timeout)" in line
    nothing_left(fake, before)
    deleted = [d for d in fake.state()["deleted"] if d["reason"] == "api"]
    assert deleted and deleted[-1]["propagation"] == "Background"


@pytest.mark.parametrize("failure,words", [
    ("ImagePullBackOff", ["cannot start", "ImagePullBackOff"]),
    ("Unschedulable", ["cannot be scheduled"]),
    ("FailedCreate", ["could not create its pod", "violates PodSecurity"]),
])
def test_agent_pod_failures(fake, build_dir, tmp_path, failure, words):
    """Failures that will not fix themselves end the wait at once."""
    before = set(jobs(fake))
    fake.control(job_failure=failure)
    t0 = time.time()
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"],
                                 config={"agent": {"startup_timeout": 60}}, tmp_path=tmp_path))
    assert time.time() - t0 < 20, "waited for the startup timeout"
    for w in words:
        assert w in line, line
    nothing_left(fake, before)


def test_portforward_refused(fake, build_dir):
    before = set(jobs(fake))
    fake.control(portforward="refuse")
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"]))
    assert "refused the port-forward" in line and "403" in line
    assert 'cannot create resource "pods/portforward"' in line
    nothing_left(fake, before)


def test_ephemeral_disabled(fake, build_dir, tmp_path):
    fake.control(ephemeral_containers=False)
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"],
                                 config={"agent": {"ephemeral": True}}, tmp_path=tmp_path))
    assert "ephemeral containers are disabled" in line


# --- targetless, TLS server name, proxies, progress ----------------------------------------------


def test_targetless(fake, build_dir, tmp_path):
    n = len(received_jobs(fake))
    cfg = {"agent": {"communication_timeout": 1, "node_selector": {"disk": "ssd"}}}
    r = podenv(build_dir, "exec", "--", "cat", "/proc/sys/kernel/hostname",
               kubeconfig=fake.kubeconfig["token"], config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == open("/proc/sys/kernel/hostname").read().strip()
    (job,) = [j["body"] for j in received_jobs(fake)[n:]]
    spec = job["spec"]["template"]["spec"]
    assert "nodeName" not in spec and not spec.get("hostPID")
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert "--container-id" not in spec["containers"][0]["args"]


def kubeconfig_edit(fake, tmp_path, name, cluster_extra=None, server=None):
    with open(fake.kubeconfig["token"]) as f:
        text = f.read()
    if server:
        text = text.replace(fake.url, server)
    if cluster_extra:
        lines = text.splitlines()
        i = next(i for i, l in enumerate(lines) if l.strip().startswith("server:"))
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        lines[i + 1:i + 1] = [indent + l for l in cluster_extra]
        text = "\n".join(lines) + "\n"
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_tls_server_name(fake, build_dir, tmp_path):
    # The certificate names 127.0.0.1 and localhost: connect to the address,
    # check (and send SNI for) the name.
    kc = kubeconfig_edit(fake, tmp_path, "sni.yaml", ["tls-server-name: localhost"])
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=kc, config={"agent": {"communication_timeout": 1}}, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    kc = kubeconfig_edit(fake, tmp_path, "sni-bad.yaml", ["tls-server-name: bears.invalid"])
    line = one_line_error(podenv(build_dir, "ls", kubeconfig=kc))
    assert "certificate" in line


class ConnectProxy:
    """A tiny HTTP CONNECT proxy on loopback that counts its tunnels."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.tunnels = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import socket
        import threading
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c, socket), daemon=True).start()

    def handle(self, c, socket):
        import select
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                c.close()
                return
            head += d
        line = head.split(b"\r\n")[0].decode()
        method, target = line.split()[:2]
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 no\r\n\r\n")
            c.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        u = socket.create_connection((host, int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            u.sendall(rest)
        socks = [c, u]
        try:
            while True:
                r, _, _ = select.select(socks, [], [], 30)
                if not r:
                    break
                for s in r:
                    d = s.recv(65536)
                    if not d:
                        raise EOFError
                    (u if s is c else c).sendall(d)
        except (EOFError, OSError):
            pass
        c.close()
        u.close()

    def close(self):
        self.stop = True
        self.sock.close()


def test_proxy_url_and_use_proxy(fake, build_dir, tmp_path):
    proxy = ConnectProxy()
    try:
        kc = kubeconfig_edit(fake, tmp_path, "proxy.yaml",
                             [f"proxy-url: http://127.0.0.1:{proxy.port}"])
        r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
                   kubeconfig=kc, config={"agent": {"communication_timeout": 1}},
                   tmp_path=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "bear-pod\n"
        # API requests and the port-forward both went through the proxy
        assert len(proxy.tunnels) >= 2 and set(proxy.tunnels) == {f"127.0.0.1:{fake.info['port']}"}
        n = len(proxy.tunnels)
        r = podenv(build_dir, "ls", kubeconfig=kc, config={"use_proxy": False},
                   tmp_path=tmp_path)
        assert r.returncode == 0, r.stderr
        assert len(proxy.tunnels) == n, "use_proxy: false still used the proxy"
        # *_proxy from the environment: loopback is never proxied (as Go does)
        r = podenv(build_dir, "ls", kubeconfig=fake.kubeconfig["token"],
                   env={"https_proxy": f"http://127.0.0.1:{proxy.port}"})
        assert r.returncode == 0, r.stderr
        assert len(proxy.tunnels) == n
    finally:
        proxy.close()


def test_progress_line_on_a_terminal(fake, build_dir, tmp_path):
    """A spinner line on a terminal while the agent starts, erased at the end;
    nothing with -q."""
    import pty
    import select as sel
    fake.control(agent_start_delay=1.0)
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"agent": {"communication_timeout": 1}}))
    for quiet in (False, True):
        master, slave = pty.openpty()
        args = [os.path.join(build_dir, "podenv")] + (["-q"] if quiet else []) + [
            "exec", "-f", str(cfg), "-t", "pod/bear-pod", "--", "true"]
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent",
                                                "KUBECONFIG": fake.kubeconfig["token"]})
        os.close(slave)
        out = b""
        while True:
            r, _, _ = sel.select([master], [], [], 30)
            if not r:
                break
            try:
                d = os.read(master, 4096)
            except OSError:
                break
            if not d:
                break
            out += d
        assert p.wait(30) == 0, out
        os.close(master)
        text = out.decode(errors="replace")
        if quiet:
            assert text == "", text
        else:
            assert "waiting for the agent pod" in text, text
            assert text.endswith("\r\x1b[K"), repr(text[-40:])


def test_interrupted_while_waiting(fake, build_dir, tmp_path):
    """Ctrl-C while the agent starts: the Job goes, podenv exits non-zero."""
    import signal
    before = set(jobs(fake))
    fake.control(agent_start_delay=30.0)
    cfg = tmp_path / "i.json"
    cfg.write_text(json.dumps({"agent": {"startup_timeout": 60}}))
    n = len(received_jobs(fake))
    p = subprocess.Popen([os.path.join(build_dir, "podenv"), "exec", "-f", str(cfg), "-t",
                          "pod/bear-pod", "--", "true"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env={"PATH": os.environ["PATH"], "HOME": "/nonexistent",
                              "KUBECONFIG": fake.kubeconfig["token"]})
    wait_for(lambda: len(received_jobs(fake)) > n, 20, "the Job")
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode != 0
    assert "interrupted while waiting for the agent" in err
    nothing_left(fake, before)


def test_bash_completes_kube_targets(fake, build_dir):
    script = ("source packaging/completions/podenv.bash\n"
              "COMP_WORDS=(podenv exec -t pod/bear-m); COMP_CWORD=3\n"
              "_podenv\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
              "COMP_WORDS=(podenv l); COMP_CWORD=1\n"
              "_podenv\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "--norc", "-c", script], stdout=subprocess.PIPE, text=True,
                       cwd=str(ROOT), env={"PATH": f"{build_dir}:{os.environ['PATH']}",
                                           "HOME": "/nonexistent",
                                           "KUBECONFIG": fake.kubeconfig["token"]})
    got = r.stdout.split()
    assert got == ["pod/bear-multi/container/app", "pod/bear-multi/container/sidecar",
                   "pod/bear-multi", "ls"], got


def test_bulk_data_both_ways(fake, build_dir, tmp_path, cluster):
    """32 MiB read from the pod and 8 MiB written to it through the
    port-forward: framing, partial writes and back-pressure."""
    import hashlib
    import secrets
    d = "/srv/podenv-kube-" + secrets.token_hex(3)
    os.makedirs(cluster.pod_path(d))
    try:
        data = os.urandom(32 << 20)
        with open(cluster.pod_path(d) + "/big", "wb") as f:
            f.write(data)
        r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--fs-mode", "write", "--", "sh", "-c",
                   f"sha256sum {d}/big && head -c 8388608 {d}/big > {d}/copy",
                   kubeconfig=fake.kubeconfig["token"],
                   config={"agent": {"communication_timeout": 1}}, tmp_path=tmp_path,
                   timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        with open(cluster.pod_path(d) + "/copy", "rb") as f:
            assert f.read() == data[:8 << 20]
    finally:
        shutil.rmtree(cluster.pod_path(d), ignore_errors=True)


def test_check_out_of_pods(fake, build_dir, tmp_path):
    before, n = set(jobs(fake)), len(received_jobs(fake))
    fake.control(node_pods=2)
    line = one_line_error(podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "true",
                                 kubeconfig=fake.kubeconfig["token"]))
    assert "node podenv-node has no room for the agent pod" in line and "of 2 pods" in line
    assert len(received_jobs(fake)) == n and set(jobs(fake)) <= before
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=fake.kubeconfig["token"],
               config={"agent": {"check_out_of_pods": False, "communication_timeout": 1}},
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"


def test_agent_namespace_privileged_and_defaults(fake, build_dir, tmp_path):
    n = len(received_jobs(fake))
    cfg = {"agent": {"namespace": "kube-system", "privileged": True, "priority_class": "high",
                     "json_log": True, "log_level": "podenv=debug,warn",
                     "communication_timeout": 1}}
    r = podenv(build_dir, "exec", "-t", "pod/bear-pod", "--", "cat", "/etc/hostname",
               kubeconfig=fake.kubeconfig["token"], config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bear-pod\n"
    (rec,) = received_jobs(fake)[n:]
    assert rec["namespace"] == "kube-system"
    spec = rec["body"]["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "high"
    assert spec["tolerations"] == [{"operator": "Exists"}]  # mirrord's default
    (c,) = spec["containers"]
    assert c["securityContext"] == {"privileged": True}
    assert c["image"] == "localhost/podenv-agent:0.1.0" and c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {"requests": {"cpu": "1m", "memory": "1Mi"},
                              "limits": {"cpu": "100m", "memory": "100Mi"}}
    assert "--json-log" in c["args"]
    assert c["args"][c["args"].index("--log-level") + 1] == "podenv=debug,warn"
    ups = [q for q in fake.requests() if q.get("upgrade")]
    assert "/namespaces/kube-system/pods/" in ups[-1]["path"]
