"""Helpers for tests that use the fake API server (tests/kube/README.md).

    fake = FakeAPI(dir, agent=..., pod_pid=...).start()   # waits until it listens
    fake.kubeconfig["token"]                               # kubeconfig paths by variant
    fake.api("GET", "/api/v1/namespaces/default/pods/bear-pod")  -> (status, json)
    fake.control(job_failure="ImagePullBackOff")
    fake.state()                                           # received bodies, agents, objects
    fake.kubectl("get", "pod", "bear-pod", "-o", "json", home=tmp)
    fake.stop()                                            # kills agents, restores the cgroup

    with ws_port_forward(fake, "default", pod, 7777) as local_port: ...
        # a local port bridged to the pod port through a WebSocket
        # v4.channel.k8s.io port-forward (one TCP connection, as the protocol allows)
"""
import base64
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"

import sys  # noqa: E402
sys.path.insert(0, HERE)
import wire  # noqa: E402


class FakeAPI:
    def __init__(self, dir, agent=None, pod_pid=None, args=()):
        self.dir = os.path.abspath(dir)
        self.agent, self.pod_pid, self.extra = agent, pod_pid, list(args)
        self.proc = None
        self.info = None

    def start(self, timeout=30):
        os.makedirs(self.dir, exist_ok=True)
        cmd = [PYTHON, os.path.join(HERE, "fakeapi.py"), "--dir", self.dir]
        if self.agent:
            cmd += ["--agent", self.agent]
        if self.pod_pid:
            cmd += ["--pod-pid", str(self.pod_pid)]
        cmd += self.extra
        self.log = open(os.path.join(self.dir, "fakeapi.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        info = os.path.join(self.dir, "info.json")
        deadline = time.time() + timeout
        while not os.path.exists(info):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"fakeapi did not start: {self.read_log()}")
            time.sleep(0.05)
        with open(info) as f:
            self.info = json.load(f)
        self.url = self.info["url"]
        self.token = self.info["token"]
        self.kubeconfig = self.info["kubeconfig"]
        self.ctx = ssl.create_default_context(cafile=self.info["ca"])
        return self

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "fakeapi.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # A fake that died without cleaning up: undo its cgroup move, kill its agents.
        if os.path.exists(os.path.join(self.dir, "cgroup.json")):
            subprocess.run([PYTHON, os.path.join(HERE, "fakeapi.py"), "--dir", self.dir,
                            "--restore-cgroup"], timeout=30)
        for p in self.agent_pids_left():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def agent_pids_left(self):
        """podenv-agent processes still running with a token file in our dir."""
        left = []
        adir = os.path.join(self.dir, "agents")
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.startswith(adir.encode() + b"/") for a in argv):
                left.append(int(d))
        return left

    # -- HTTP --

    def api(self, method, path, body=None, token=None, headers=None, cert=None, timeout=30):
        """One request; (status, parsed JSON or text). token=False sends none."""
        u = urllib.parse.urlsplit(self.url)
        ctx = self.ctx
        if cert:
            ctx = ssl.create_default_context(cafile=self.info["ca"])
            ctx.load_cert_chain(*cert)
        import http.client
        c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=timeout)
        h = {"Accept": "application/json"}
        if token is None:
            token = self.token
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode(errors="replace")

    def control(self, **settings):
        code, body = self.api("POST", "/fake/control", settings, token=False)
        assert code == 200, body
        return body

    def state(self):
        return self.api("GET", "/fake/state", token=False)[1]

    def requests(self):
        return self.api("GET", "/fake/requests", token=False)[1]

    def kubectl(self, *args, home, kubeconfig=None, timeout=60, env=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
             "KUBECONFIG": kubeconfig or self.kubeconfig["token"]}
        e.update(env or {})
        os.makedirs(home, exist_ok=True)
        return subprocess.run(["kubectl", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout, env=e)

    def wait_pod(self, ns, label_selector, phase="Running", timeout=20):
        q = urllib.parse.quote(label_selector)
        deadline = time.time() + timeout
        pods = []
        while time.time() < deadline:
            code, body = self.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={q}")
            pods = body.get("items", []) if code == 200 else []
            if pods and pods[0]["status"].get("phase") == phase:
                return pods[0]
            time.sleep(0.05)
        raise AssertionError(f"no {phase} pod for {label_selector}: {pods}")


def agent_job(name, container_id, token, port=7777, **extra):
    """A Job body as the contract in README.md wants it (args + PODENV_AGENT_TOKEN env)."""
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "labels": {"app": "podenv-agent"}},
           "spec": {"backoffLimit": 0, "template": {
               "metadata": {"labels": {"app": "podenv-agent"}},
               "spec": {"restartPolicy": "Never", "hostPID": True,
                        "containers": [{
                            "name": "podenv-agent", "image": "podenv.test/agent:dev",
                            "command": ["podenv-agent"],
                            "args": ["--container-id", container_id,
                                     "--listen", f"0.0.0.0:{port}", "-t", "60"],
                            "env": [{"name": "PODENV_AGENT_TOKEN", "value": token}]}]}}}}
    job["spec"].update(extra)
    return job


class WSChannelClient:
    """A WebSocket v4.channel.k8s.io port-forward, as podenv's C client does it."""

    def __init__(self, fake, ns, pod, ports, protocol="v4.channel.k8s.io", token=None):
        u = urllib.parse.urlsplit(fake.url)
        raw = socket.create_connection((u.hostname, u.port), timeout=10)
        self.sock = fake.ctx.wrap_socket(raw, server_hostname=u.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        q = "&".join(f"ports={p}" for p in ports)
        req = (f"GET /api/v1/namespaces/{ns}/pods/{pod}/portforward?{q} HTTP/1.1\r\n"
               f"Host: {u.hostname}:{u.port}\r\nAuthorization: Bearer {token or fake.token}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n")
        self.sock.sendall(req.encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("closed during the upgrade")
            self.buf += d
        end = self.buf.index(b"\r\n\r\n")
        head = self.buf[:end].decode("latin-1")
        del self.buf[:end + 4]
        self.status = int(head.split(" ", 2)[1])
        self.head = head
        if self.status != 101:
            self.body = bytes(self.buf)
            return
        hdrs = {k.strip().lower(): v.strip() for k, _, v in
                (ln.partition(":") for ln in head.split("\r\n")[1:])}
        assert hdrs.get("sec-websocket-accept") == wire.ws_accept(key), head
        assert hdrs.get("sec-websocket-protocol") == protocol, head

    def recv_message(self, timeout=10):
        """(opcode, payload) of the next frame."""
        self.sock.settimeout(timeout)
        while True:
            f = wire.ws_parse(self.buf)
            if f:
                fin, op, payload, masked, used = f
                assert not masked, "server frames must not be masked"
                del self.buf[:used]
                return op, payload
            d = self.sock.recv(65536)
            if not d:
                return None, b""
            self.buf += d

    def send_channel(self, ch, data):
        self.sock.sendall(wire.ws_frame(wire.OP_BINARY, bytes([ch]) + data, mask=True))

    def close(self):
        try:
            self.sock.sendall(wire.ws_frame(wire.OP_CLOSE, (1000).to_bytes(2, "big"),
                                            mask=True))
        except OSError:
            pass
        self.sock.close()


@contextmanager
def ws_port_forward(fake, ns, pod, port):
    """Listen on a local port; the first connection is bridged to the pod port over a
    WebSocket v4.channel.k8s.io port-forward. Yields (local port, info dict)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    info = {"prefix": [], "errors": [], "done": threading.Event()}

    def bridge():
        try:
            conn, _ = lsock.accept()
            ws = WSChannelClient(fake, ns, pod, [port])
            if ws.status != 101:
                info["errors"].append(f"upgrade: {ws.status} {ws.body!r}")
                conn.close()
                return
            for _ in range(2):  # the port, first on the data then on the error channel
                op, payload = ws.recv_message()
                info["prefix"].append(payload)
            ws.sock.setblocking(False)
            while True:
                if ws.sock.pending() or wire.ws_parse(ws.buf):
                    ready = [ws.sock]
                else:
                    ready, _, _ = select.select([conn, ws.sock], [], [], 30)
                    if not ready:
                        break
                if conn in ready:
                    d = conn.recv(65536)
                    if not d:
                        break
                    ws.sock.setblocking(True)
                    ws.send_channel(0, d)
                    ws.sock.setblocking(False)
                if ws.sock in ready:
                    try:
                        d = ws.sock.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        d = None
                    if d == b"":
                        break
                    if d:
                        ws.buf += d
                    end = False
                    while True:
                        f = wire.ws_parse(ws.buf)
                        if not f:
                            break
                        _, op, payload, _, used = f
                        del ws.buf[:used]
                        if op == wire.OP_CLOSE:
                            end = True
                            break
                        if op == wire.OP_BINARY and payload[:1] == b"\0":
                            conn.sendall(payload[1:])
                        elif op == wire.OP_BINARY and payload[:1] == b"\1":
                            info["errors"].append(payload[1:].decode(errors="replace"))
                    if end:
                        break
            ws.sock.setblocking(True)
            ws.close()
            conn.close()
        except Exception as e:  # reported to the test through info
            info["errors"].append(repr(e))
        finally:
            info["done"].set()

    t = threading.Thread(target=bridge, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1], info
    finally:
        lsock.close()
        info["done"].wait(10)
