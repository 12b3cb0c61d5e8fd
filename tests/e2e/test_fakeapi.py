"""The fake Kubernetes API server (tests/kube/) against the real kubectl and
podenv-agent: discovery and objects for `kubectl get`, token and client
certificate auth, a Job that starts a real agent for the mini cluster's pod,
port-forward to it with kubectl (SPDY/3.1, tunnelled in WebSocket or plain)
and with a WebSocket v4.channel.k8s.io client, job deletion and TTL."""
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest

from conftest import ROOT, run

sys.path.insert(0, str(ROOT / "tests" / "kube"))
import fakekube  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None or shutil.which("openssl") is None,
                                reason="needs kubectl and openssl")


@pytest.fixture(scope="module")
def fake(cluster, build_dir):
    tmp = tempfile.mkdtemp(prefix="podenv-fakeapi-")
    f = fakekube.FakeAPI(os.path.join(tmp, "fake"), agent=os.path.join(build_dir, "podenv-agent"),
                         pod_pid=cluster.pod_pid)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        left = f.agent_pids_left()
        with open(f"/proc/{cluster.pod_pid}/cgroup") as cg:
            moved = "podenv-fake-cri-containerd" in cg.read()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"agents left running: {left}"
        assert not moved, "the pod process is still in the fake's cgroup"


@pytest.fixture
def home(tmp_path):
    """A fresh HOME per test: kubectl caches /version and discovery there."""
    h = tmp_path / "home"
    h.mkdir()
    return str(h)


@pytest.fixture
def token_file(tmp_path):
    tok = secrets.token_hex(32)
    p = tmp_path / "agent-token"
    p.write_text(tok + "\n")
    return tok, str(p)


@pytest.fixture(autouse=True)
def _reset_settings(request):
    yield
    if "fake" in request.fixturenames:
        f = request.getfixturevalue("fake")
        f.control(job_failure=None, forbid=[], portforward="ok", spdy_over_websocket=True,
                  ephemeral_containers=True, agent_start_delay=0.0)


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def agent_hostname(build_dir, port, token_path):
    return run([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{port}",
                "--token-file", token_path, "hostname", "cat /etc/hostname"], timeout=30)


def create_job_with_curl(fake, job, ns="default"):
    r = run(["curl", "-sS", "--cacert", fake.info["ca"], "-H",
             f"Authorization: Bearer {fake.token}", "-H", "Content-Type: application/json",
             "-X", "POST", "--data-binary", json.dumps(job), "-w", "\n%{http_code}",
             f"{fake.url}/apis/batch/v1/namespaces/{ns}/jobs"], check=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(body)


def delete_job(fake, name, policy="Background"):
    q = f"?propagationPolicy={policy}" if policy else ""
    return fake.api("DELETE", f"/apis/batch/v1/namespaces/default/jobs/{name}{q}")


class PortForward:
    """`kubectl port-forward pod/NAME 0:PORT`; .local is the port it listens on."""

    def __init__(self, fake, home, pod, port, kubeconfig=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "KUBECONFIG": kubeconfig or fake.kubeconfig["token"]}
        self.proc = subprocess.Popen(["kubectl", "port-forward", f"pod/{pod}", f"0:{port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.local = None
        deadline = time.time() + 20
        out = ""
        while time.time() < deadline and self.local is None:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                out += line
                if line.startswith("Forwarding from 127.0.0.1:"):
                    self.local = int(line.split(":")[1].split()[0])
            if self.proc.poll() is not None:
                break
        if self.local is None:
            self.stop()
            raise AssertionError(f"kubectl port-forward did not start: {out}{self.stderr}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def agent_job(fake, token_file):
    """A Job whose agent targets bear-pod; deleted (with its pod) afterwards."""
    tok, path = token_file
    name = "podenv-agent-" + secrets.token_hex(3)
    job = fakekube.agent_job(name, fake.info["container_ids"]["bear-pod/bear"], tok)
    code, body = create_job_with_curl(fake, job)
    assert code == 201, body
    pod = fake.wait_pod("default", f"job-name={name}")
    yield {"name": name, "pod": pod["metadata"]["name"], "token": tok, "token_file": path,
           "job": job}
    delete_job(fake, name)


# --- kubectl against the fake -------------------------------------------------------------

def test_kubectl_get_pod_shows_the_container_id(fake, home, cluster, build_dir):
    r = fake.kubectl("get", "pod", "bear-pod", "-o", "json", home=home)
    assert r.returncode == 0, r.stderr
    pod = json.loads(r.stdout)
    cid = pod["status"]["containerStatuses"][0]["containerID"]
    assert cid == fake.info["container_ids"]["bear-pod/bear"]
    assert cid.startswith("containerd://") and len(cid) == len("containerd://") + 64
    assert pod["status"]["phase"] == "Running"
    # The id really names the mini cluster's pod process (the cgroup move).
    r = run([os.path.join(build_dir, "podenv-agent"), "--container-id", cid, "--inspect"],
            check=True)
    assert r.stdout.splitlines()[0] == f"target: pid {cluster.pod_pid}"
    assert "hostname: bear-pod" in r.stdout
    reqs = [(q["method"], q["path"]) for q in fake.requests()]
    assert ("GET", "/version") in reqs and ("GET", "/api/v1") in reqs


def test_kubectl_get_deploy_and_selectors(fake, home):
    r = fake.kubectl("get", "deploy", home=home)
    assert r.returncode == 0, r.stderr
    assert "bear" in r.stdout.split()
    r = fake.kubectl("get", "pods", "-l", "app=bear", "-o", "name", home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pod/bear-pod"]
    code, dep = fake.api("GET", "/apis/apps/v1/namespaces/default/deployments/bear")
    sel = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    code, pods = fake.api("GET", "/api/v1/namespaces/default/pods?labelSelector="
                          + urllib.parse.quote(sel))
    assert [p["metadata"]["name"] for p in pods["items"]] == ["bear-pod"]
    code, pods = fake.api("GET", "/api/v1/namespaces/default/pods?labelSelector="
                          + urllib.parse.quote("app in (bear-multi,nothing)"))
    assert [len(p["spec"]["containers"]) for p in pods["items"]] == [2]


def test_client_certificate_kubeconfig(fake, home):
    r = fake.kubectl("get", "pod", "bear-pod", "-o", "name", home=home,
                     kubeconfig=fake.kubeconfig["cert"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "pod/bear-pod"
    users = {q["user"] for q in fake.requests()
             if q["path"] == "/api/v1/namespaces/default/pods/bear-pod"}
    assert fake.info["cert_user"] in users


def test_wrong_token_is_401(fake, home, tmp_path):
    bad = tmp_path / "bad.yaml"
    with open(fake.kubeconfig["token"]) as f:
        bad.write_text(f.read().replace(fake.token, "not-the-token"))
    r = fake.kubectl("get", "pod", "bear-pod", home=home, kubeconfig=str(bad))
    assert r.returncode != 0
    assert "You must be logged in to the server" in r.stderr
    assert [q["code"] for q in fake.requests() if q["user"] is None][-1] == 401
    code, body = fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod", token=False)
    assert code == 401 and body["reason"] == "Unauthorized"


def test_forbidden_job_creation(fake, token_file):
    fake.control(forbid=["create:jobs"])
    job = fakekube.agent_job("forbidden-job", fake.info["container_ids"]["bear-pod/bear"],
                             token_file[0])
    code, body = create_job_with_curl(fake, job)
    assert code == 403, body
    assert body["reason"] == "Forbidden"
    assert 'cannot create resource "jobs" in API group "batch"' in body["message"]
    assert fake.api("GET", "/apis/batch/v1/namespaces/default/jobs/forbidden-job")[0] == 404


# --- a Job starts a real agent; port-forward reaches it -----------------------------------

@pytest.mark.parametrize("tunnel", [True, False], ids=["spdy-in-websocket", "plain-spdy"])
def test_kubectl_port_forward_to_the_agent_job(fake, home, agent_job, build_dir, tunnel):
    fake.control(spdy_over_websocket=tunnel)
    pf = PortForward(fake, home, agent_job["pod"], 7777)
    try:
        r = agent_hostname(build_dir, pf.local, agent_job["token_file"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["ok bear-pod", "bear-pod"]
        r = agent_hostname(build_dir, pf.local, agent_job["token_file"])  # a second stream
        assert r.stdout.splitlines()[0] == "ok bear-pod", r.stderr
    finally:
        pf.stop()
    ups = [(q["method"], q["code"]) for q in fake.requests()
           if q["path"].endswith(agent_job["pod"] + "/portforward")]
    assert ups == ([("GET", 101)] if tunnel else [("GET", 400), ("POST", 101)])
    # What the fake received is the whole Job body.
    got = [x for x in fake.state()["received"] if x["resource"] == "jobs"
           and x["body"]["metadata"]["name"] == agent_job["name"]]
    assert got and got[0]["body"] == agent_job["job"]


def test_websocket_v4_channel_port_forward(fake, agent_job, build_dir):
    with fakekube.ws_port_forward(fake, "default", agent_job["pod"], 7777) as (port, info):
        r = run([podenv(build_dir), "debug", "agent", "--connect", f"127.0.0.1:{port}",
                 "--token-file", agent_job["token_file"], "hostname",
                 f"echoload {fake_echo_ip()} 7 2 200000"], timeout=60)
    assert r.returncode == 0, r.stderr + str(info["errors"])
    assert r.stdout.splitlines()[0] == "ok bear-pod"
    assert r.stdout.splitlines()[1].startswith("ok streams=2")
    assert info["prefix"] == [b"\x00" + (7777).to_bytes(2, "little"),
                              b"\x01" + (7777).to_bytes(2, "little")]
    assert info["errors"] == []
    # A port nothing listens on: the reason arrives on the error channel, then a close.
    ws = fakekube.WSChannelClient(fake, "default", agent_job["pod"], [7778])
    assert ws.status == 101
    msgs = [ws.recv_message() for _ in range(4)]
    ws.close()
    assert msgs[2][1].startswith(b"\x01error forwarding port 7778 to pod ")
    assert msgs[3][0] == 8  # close
    ws = fakekube.WSChannelClient(fake, "default", "no-such-pod", [7777])
    assert ws.status == 404 and b'pods \\"no-such-pod\\" not found' in ws.body


def fake_echo_ip():
    return "10.213.0.13"


def test_port_forward_refused(fake, agent_job):
    fake.control(portforward="refuse")
    ws = fakekube.WSChannelClient(fake, "default", agent_job["pod"], [7777])
    assert ws.status == 403 and b"pods/portforward" in ws.body


def test_delete_job_stops_the_agent(fake, token_file):
    name = "podenv-agent-del"
    job = fakekube.agent_job(name, fake.info["container_ids"]["bear-pod/bear"], token_file[0])
    assert create_job_with_curl(fake, job)[0] == 201
    pod = fake.wait_pod("default", f"job-name={name}")["metadata"]["name"]
    agents = [a for a in fake.state()["agents"] if a["pod"] == pod]
    assert len(agents) == 1 and agents[0]["alive"]
    assert agents[0]["argv"][1:3] == ["--container-id", fake.info["container_ids"]["bear-pod/bear"]]
    code, body = delete_job(fake, name)
    assert code == 200 and body["status"] == "Success", body
    deadline = time.time() + 10
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{agents[0]['pid']}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{agents[0]['pid']}")
    assert fake.api("GET", f"/api/v1/namespaces/default/pods/{pod}")[0] == 404
    assert fake.api("GET", f"/apis/batch/v1/namespaces/default/jobs/{name}")[0] == 404


def test_delete_job_without_propagation_orphans_the_pod(fake, token_file):
    """As batch/v1 does: the pod (and its agent) outlive the Job."""
    name = "podenv-agent-orphan"
    job = fakekube.agent_job(name, fake.info["container_ids"]["bear-pod/bear"], token_file[0])
    assert create_job_with_curl(fake, job)[0] == 201
    pod = fake.wait_pod("default", f"job-name={name}")["metadata"]["name"]
    assert delete_job(fake, name, policy=None)[0] == 200
    code, body = fake.api("GET", f"/api/v1/namespaces/default/pods/{pod}")
    assert code == 200 and body["status"]["phase"] == "Running"
    assert fake.api("DELETE", f"/api/v1/namespaces/default/pods/{pod}")[0] == 200
    assert not [a for a in fake.state()["agents"] if a["pod"] == pod and a["alive"]]


def test_ttl_removes_a_finished_job(fake, token_file):
    name = "podenv-agent-ttl"
    job = fakekube.agent_job(name, fake.info["container_ids"]["bear-pod/bear"], token_file[0],
                             ttlSecondsAfterFinished=1)
    c = job["spec"]["template"]["spec"]["containers"][0]
    c["args"][c["args"].index("-t") + 1] = "1"  # the agent exits 1 s after its last client
    assert create_job_with_curl(fake, job)[0] == 201
    fake.wait_pod("default", f"job-name={name}")
    deadline = time.time() + 15
    while time.time() < deadline:
        if fake.api("GET", f"/apis/batch/v1/namespaces/default/jobs/{name}")[0] == 404:
            break
        time.sleep(0.1)
    deleted = [d for d in fake.state()["deleted"] if d["name"] == name]
    assert deleted and deleted[0]["reason"] == "ttl"
    code, pods = fake.api("GET", f"/api/v1/namespaces/default/pods?labelSelector=job-name%3D{name}")
    assert pods["items"] == []


@pytest.mark.parametrize("failure,reason", [("ImagePullBackOff", "BackOff"),
                                            ("Unschedulable", "FailedScheduling")])
def test_job_failures_show_in_status_and_events(fake, token_file, failure, reason):
    fake.control(job_failure=failure)
    name = "podenv-agent-" + failure.lower()
    job = fakekube.agent_job(name, fake.info["container_ids"]["bear-pod/bear"], token_file[0])
    assert create_job_with_curl(fake, job)[0] == 201
    try:
        pod = fake.wait_pod("default", f"job-name={name}", phase="Pending")
        pname = pod["metadata"]["name"]
        time.sleep(0.3)
        code, pod = fake.api("GET", f"/api/v1/namespaces/default/pods/{pname}")
        if failure == "Unschedulable":
            cond = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"][0]
            assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
        else:
            st = pod["status"]["containerStatuses"][0]["state"]["waiting"]
            assert st["reason"] == failure
        code, evs = fake.api("GET", "/api/v1/namespaces/default/events?fieldSelector="
                             + urllib.parse.quote(f"involvedObject.name={pname}"))
        assert reason in [e["reason"] for e in evs["items"]]
        assert not [a for a in fake.state()["agents"] if a["pod"] == pname]
    finally:
        delete_job(fake, name)


def test_ephemeral_container_agent(fake, token_file, build_dir):
    tok, path = token_file
    name = "podenv-eph-" + secrets.token_hex(3)
    patch = {"spec": {"ephemeralContainers": [{
        "name": name, "image": "podenv.test/agent:dev", "targetContainerName": "bear",
        "args": ["--listen", "0.0.0.0:7790", "-t", "30"],
        "env": [{"name": "PODENV_AGENT_TOKEN", "value": tok}]}]}}
    code, pod = fake.api("PATCH", "/api/v1/namespaces/default/pods/bear-pod/ephemeralcontainers",
                         json.dumps(patch).encode(),
                         headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert code == 200, pod
    assert name in [c["name"] for c in pod["spec"]["ephemeralContainers"]]
    deadline = time.time() + 10
    while time.time() < deadline:
        pod = fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod")[1]
        st = [s for s in pod["status"].get("ephemeralContainerStatuses", [])
              if s["name"] == name]
        if st and "running" in st[0]["state"]:
            break
        time.sleep(0.05)
    assert st and "running" in st[0]["state"], pod["status"]
    with fakekube.ws_port_forward(fake, "default", "bear-pod", 7790) as (port, info):
        r = agent_hostname(build_dir, port, path)
    assert r.stdout.splitlines() == ["ok bear-pod", "bear-pod"], r.stderr + str(info)
    # Existing ephemeral containers cannot be removed.
    code, body = fake.api("PATCH", "/api/v1/namespaces/default/pods/bear-pod/ephemeralcontainers",
                          b'{"spec":{"ephemeralContainers":[]}}',
                          headers={"Content-Type": "application/merge-patch+json"})
    assert code == 422


def test_client_certificates_by_ca(fake, tmp_path):
    import ssl
    import pki
    ca = (fake.info["ca"], fake.info["ca_key"])
    mine = pki.make_client_cert(str(tmp_path), ca, "alice")
    code, body = fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod", token=False,
                          cert=mine)
    assert code == 200, body
    assert [q["user"] for q in fake.requests()][-1] == "alice"
    fake.control(forbid=["alice@get:pods"])
    code, body = fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod", token=False,
                          cert=mine)
    assert code == 403 and 'User "alice" cannot get resource "pods"' in body["message"]
    other = pki.make_ca(str(tmp_path / "other"), "other-ca")
    theirs = pki.make_client_cert(str(tmp_path / "other"), other, "mallory")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod", token=False, cert=theirs)
