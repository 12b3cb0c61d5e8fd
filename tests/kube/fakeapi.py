#!/usr/bin/python3
"""A fake Kubernetes API server for podenv's tests (tests/kube/README.md).

TLS with its own CA, bearer-token and client-certificate auth, the discovery
endpoints kubectl needs, pods / deployments / jobs / events / nodes, the
ephemeralcontainers subresource, and port-forward over WebSocket
(`v4.channel.k8s.io`, and SPDY/3.1 tunnelled in WebSocket) and over a plain
SPDY/3.1 upgrade. A Job (or bare Pod, or ephemeral container) whose container
runs podenv-agent really starts podenv-agent on this machine; port-forward to
the agent pod reaches it. Standard library only, plus the openssl command.

    fakeapi.py --dir DIR [--agent PATH] [--pod-pid PID] [--listen 127.0.0.1:0] ...
"""
import argparse
import base64
import copy
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pki  # noqa: E402
import wire  # noqa: E402
from wire import SpdyCodec  # noqa: E402

NODE = "podenv-node"
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "fake",
           "gitTreeState": "clean", "buildDate": "2025-04-22T16:00:00Z", "goVersion": "go1.23.6",
           "compiler": "gc", "platform": "linux/amd64"}
JOB_FAILURES = ("ImagePullBackOff", "ErrImagePull", "Unschedulable", "ContainerCreating",
                "FailedCreate")
DEFAULT_SETTINGS = {
    "job_failure": None,         # one of JOB_FAILURES: how the next agent pods fail
    "forbid": [],                # "[USER@]VERB:RESOURCE" rules answered 403
    "portforward": "ok",         # "ok" | "refuse" (403 on the upgrade)
    "spdy_over_websocket": True,  # False: 400 to kubectl's tunnelled SPDY (it falls back)
    "ephemeral_containers": True,  # False: 404 as on a cluster without them
    "agent_start_delay": 0.0,    # seconds before an agent pod's process starts
    "agent_extra_args": [],      # appended to every podenv-agent command line
    "node_pods": 110,            # the node's allocatable (and capacity) pods
}


def now_iso(t=None):
    return datetime.fromtimestamp(t or time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg):
    sys.stderr.write(f"fakeapi: {msg}\n")
    sys.stderr.flush()


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


class HTTPError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.body, self.headers = code, status_obj(code, reason, message, details), \
            headers or {}


def not_found(resource, name, group=""):
    qual = f"{resource}.{group}" if group else resource
    return HTTPError(404, "NotFound", f'{qual} "{name}" not found',
                     {"name": name, "group": group, "kind": resource})


# --- label and field selectors -------------------------------------------------------------

def _split_top(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out if x.strip()]


def label_matcher(sel):
    """A predicate over a labels dict for a Kubernetes label selector string."""
    reqs = []
    for term in _split_top(sel or ""):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\((.*)\)", term)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", term)
        if m:
            reqs.append((m.group(2), "!" if m.group(1) else "exists", None))
            continue
        raise HTTPError(400, "BadRequest", f"unable to parse requirement: {term!r}")

    def match(labels):
        labels = labels or {}
        for k, op, v in reqs:
            if op == "=" and labels.get(k) != v:
                return False
            if op == "!=" and labels.get(k) == v:
                return False
            if op == "in" and labels.get(k) not in v:
                return False
            if op == "notin" and k in labels and labels[k] in v:
                return False
            if op == "exists" and k not in labels:
                return False
            if op == "!" and k in labels:
                return False
        return True
    return match


def field_matcher(sel):
    reqs = []
    for term in _split_top(sel or ""):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise HTTPError(400, "BadRequest", f"invalid field selector: {term!r}")
        reqs.append((m.group(1), m.group(2) == "!=", m.group(3)))

    def get(obj, path):
        for part in path.split("."):
            if not isinstance(obj, dict):
                return ""
            obj = obj.get(part, "")
        return "" if obj is None else str(obj).lower() if isinstance(obj, bool) else str(obj)

    def match(obj):
        return all((get(obj, p) != v) if neg else (get(obj, p) == v) for p, neg, v in reqs)
    return match


# --- discovery -----------------------------------------------------------------------------

def _res(name, kind, verbs, namespaced=True, short=(), singular=""):
    r = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
         "verbs": verbs}
    if short:
        r["shortNames"] = list(short)
    return r


RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
        for g in ("apps", "batch")]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        _res("pods", "Pod", RW, short=["po"], singular="pod"),
        _res("pods/portforward", "PodPortForwardOptions", ["create", "get"]),
        _res("pods/ephemeralcontainers", "Pod", ["get", "patch", "update"]),
        _res("pods/status", "Pod", ["get", "patch", "update"]),
        _res("pods/log", "Pod", ["get"]),
        _res("events", "Event", RW, short=["ev"], singular="event"),
        _res("namespaces", "Namespace", ["create", "delete", "get", "list", "patch", "update",
                                         "watch"], namespaced=False, short=["ns"],
             singular="namespace"),
        _res("nodes", "Node", RW, namespaced=False, short=["no"], singular="node"),
    ]},
    "/apis/apps/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                      "resources": [
                          _res("deployments", "Deployment", RW, short=["deploy"],
                               singular="deployment"),
                          _res("deployments/status", "Deployment", ["get", "patch", "update"])]},
    "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1",
                       "resources": [
                           _res("jobs", "Job", RW, singular="job"),
                           _res("jobs/status", "Job", ["get", "patch", "update"])]},
}
# resource -> (api prefix, kind, list kind, group)
KINDS = {
    "pods": ("/api/v1", "Pod", "PodList", ""),
    "events": ("/api/v1", "Event", "EventList", ""),
    "nodes": ("/api/v1", "Node", "NodeList", ""),
    "namespaces": ("/api/v1", "Namespace", "NamespaceList", ""),
    "deployments": ("/apis/apps/v1", "Deployment", "DeploymentList", "apps"),
    "jobs": ("/apis/batch/v1", "Job", "JobList", "batch"),
}
CLUSTER_SCOPED = ("nodes", "namespaces")


# --- the object store ----------------------------------------------------------------------

class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 100
        self.objects = {k: {} for k in KINDS}   # resource -> {(ns, name): obj}
        self.log = []                             # (rv, type, resource, obj) for watch

    def put(self, resource, obj, etype=None):
        with self.lock:
            md = obj["metadata"]
            key = (md.get("namespace", ""), md["name"])
            if etype is None:
                etype = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            md.setdefault("uid", str(uuid.uuid4()))
            md.setdefault("creationTimestamp", now_iso())
            self.objects[resource][key] = obj
            self.log.append((self.rv, etype, resource, copy.deepcopy(obj)))
            del self.log[:-5000]
            self.cond.notify_all()
            return obj

    def get(self, resource, ns, name):
        with self.lock:
            return self.objects[resource].get((ns, name))

    def delete(self, resource, ns, name):
        with self.lock:
            obj = self.objects[resource].pop((ns, name), None)
            if obj is not None:
                self.rv += 1
                obj["metadata"]["resourceVersion"] = str(self.rv)
                self.log.append((self.rv, "DELETED", resource, copy.deepcopy(obj)))
                self.cond.notify_all()
            return obj

    def list(self, resource, ns=None):
        with self.lock:
            return [o for (n, _), o in sorted(self.objects[resource].items())
                    if ns is None or n == ns]


# --- the fake cluster ----------------------------------------------------------------------

class Agent:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def summary(self):
        return {"namespace": self.ns, "pod": self.pod, "container": self.container,
                "kind": self.kind, "pid": self.proc.pid if self.proc else None,
                "alive": self.alive(), "exit_code": self.proc.poll() if self.proc else None,
                "listen_port": self.listen_port, "local_port": self.local_port,
                "container_id": self.container_id, "argv": self.argv,
                "token": self.token, "log": self.log_path, "ready": self.ready}


class Fake:
    def __init__(self, args):
        self.args = args
        self.dir = os.path.abspath(args.dir)
        os.makedirs(self.dir, exist_ok=True)
        self.store = Store()
        self.settings = copy.deepcopy(DEFAULT_SETTINGS)
        for item in args.set or []:
            k, _, v = item.partition("=")
            self.settings[k] = json.loads(v)
        self.settings["forbid"] = list(self.settings["forbid"]) + list(args.forbid or [])
        if args.job_failure:
            self.settings["job_failure"] = args.job_failure
        self.received = []       # every create/patch body: {verb, resource, namespace, user, body}
        self.deleted = []        # {resource, namespace, name, reason, propagation, time}
        self.requests = []       # {method, path, user, code}
        self.agents = []         # Agent
        self.finished = {}       # (ns, job) -> time the job finished
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.cgroup = None
        self.container_ids = {}
        self.tokens = {}

    # -- setup --

    def setup_pki(self):
        pdir = os.path.join(self.dir, "pki")
        self.ca = pki.make_ca(pdir, "ca")
        self.server_cert = pki.make_server_cert(pdir, self.ca, ("127.0.0.1", "localhost"))
        self.client_cert = pki.make_client_cert(pdir, self.ca, self.args.cert_user,
                                                ("system:masters",), name="client")
        self.token = self.args.token or secrets.token_hex(16)
        self.tokens[self.token] = self.args.token_user
        for t in self.args.extra_token or []:
            tok, _, user = t.partition("=")
            self.tokens[tok] = user or "extra-user"
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")

    def ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(*self.server_cert)
        ctx.load_verify_locations(self.ca[0])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def write_kubeconfigs(self, url):
        with open(self.ca[0], "rb") as f:
            ca_data = base64.b64encode(f.read()).decode()

        def b64file(p):
            with open(p, "rb") as f:
                return base64.b64encode(f.read()).decode()

        users = {
            "token": {"token": self.token},
            "token-file": {"tokenFile": self.token_file},
            "cert": {"client-certificate-data": b64file(self.client_cert[0]),
                     "client-key-data": b64file(self.client_cert[1])},
            "cert-files": {"client-certificate": self.client_cert[0],
                           "client-key": self.client_cert[1]},
        }
        paths = {}
        for variant, user in users.items():
            lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: fake", "  cluster:",
                     f"    server: {url}", f"    certificate-authority-data: {ca_data}",
                     "contexts:", "- name: fake", "  context:", "    cluster: fake",
                     f"    user: fake-{variant}", "    namespace: default",
                     "current-context: fake", "preferences: {}", "users:",
                     f"- name: fake-{variant}", "  user:"]
            lines += [f"    {k}: {json.dumps(v)}" for k, v in user.items()]
            p = os.path.join(self.dir, f"kubeconfig-{variant}.yaml")
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.chmod(p, 0o600)
            paths[variant] = p
        return paths

    def seed(self):
        ids = {k: secrets.token_hex(32) for k in ("bear", "multi-app", "multi-sidecar")}
        self.container_ids = {"bear-pod/bear": "containerd://" + ids["bear"],
                              "bear-multi/app": "containerd://" + ids["multi-app"],
                              "bear-multi/sidecar": "containerd://" + ids["multi-sidecar"]}
        for ns in ["default", "kube-system"] + list(self.args.namespace or []):
            self.store.put("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns, "labels": {
                                              "kubernetes.io/metadata.name": ns}},
                                          "spec": {"finalizers": ["kubernetes"]},
                                          "status": {"phase": "Active"}})
        self.store.put("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE,
                                                  "kubernetes.io/os": "linux"}},
            "spec": {},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "addresses": [{"type": "InternalIP", "address": "10.213.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}})
        t = now_iso()
        ip4, ip6 = self.args.pod_ip, self.args.pod_ip6

        def pod(name, labels, containers, phase="Running", ready=True, hash_="7d9c5f6b8"):
            statuses = []
            for c, cid in containers:
                st = {"name": c, "ready": ready, "started": ready, "restartCount": 0,
                      "image": "podenv.test/bearos/podapp:1.0",
                      "imageID": "podenv.test/bearos/podapp@sha256:" + "ab" * 32}
                if cid:
                    st["containerID"] = cid
                    st["state"] = {"running": {"startedAt": t}}
                else:
                    st["state"] = {"waiting": {"reason": "ContainerCreating"}}
                statuses.append(st)
            cond = "True" if ready else "False"
            return {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default",
                             "labels": dict(labels, **{"pod-template-hash": hash_}),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": f"{labels['app']}-{hash_}",
                                                  "uid": str(uuid.uuid4()), "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": {"nodeName": NODE, "restartPolicy": "Always",
                         "serviceAccountName": "default",
                         "containers": [{"name": c, "image": "podenv.test/bearos/podapp:1.0",
                                         "ports": [{"name": "http", "containerPort": 80,
                                                    "protocol": "TCP"}] if i == 0 else [],
                                         "imagePullPolicy": "IfNotPresent"}
                                        for i, (c, _) in enumerate(containers)]},
                "status": {"phase": phase, "hostIP": "10.213.0.1",
                           "hostIPs": [{"ip": "10.213.0.1"}],
                           "podIP": ip4 if phase == "Running" else None,
                           "podIPs": [{"ip": ip4}, {"ip": ip6}] if phase == "Running" else [],
                           "startTime": t, "qosClass": "BestEffort",
                           "conditions": [{"type": ty, "status": "True" if ty in (
                               "PodScheduled", "Initialized") else cond,
                               "lastTransitionTime": t}
                               for ty in ("PodReadyToStartContainers", "Initialized", "Ready",
                                          "ContainersReady", "PodScheduled")],
                           "containerStatuses": statuses}}

        self.store.put("pods", pod("bear-pod", {"app": "bear"},
                                   [("bear", self.container_ids["bear-pod/bear"])]))
        self.store.put("pods", pod("bear-multi", {"app": "bear-multi"},
                                   [("app", self.container_ids["bear-multi/app"]),
                                    ("sidecar", self.container_ids["bear-multi/sidecar"])],
                                   hash_="5f8d9c7b6"))
        p = pod("bear-pending", {"app": "bear-pending"}, [("bear", None)], phase="Pending",
                ready=False, hash_="6c7d8e9f5")
        self.store.put("pods", p)
        for name, app, ready in (("bear", "bear", 1), ("bear-multi", "bear-multi", 1),
                                 ("bear-pending", "bear-pending", 0),
                                 ("bear-empty", "bear-empty", 0)):
            self.store.put("deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": app},
                             "generation": 1},
                "spec": {"replicas": 1 if name != "bear-empty" else 0,
                         "selector": {"matchLabels": {"app": app}},
                         "template": {"metadata": {"labels": {"app": app}},
                                      "spec": {"containers": [{
                                          "name": "bear",
                                          "image": "podenv.test/bearos/podapp:1.0"}]}}},
                "status": {"observedGeneration": 1, "replicas": 1 if name != "bear-empty" else 0,
                           "readyReplicas": ready, "availableReplicas": ready,
                           "updatedReplicas": ready}})
        # bear-pod again, through set-based requirements
        dep = copy.deepcopy(self.store.get("deployments", "default", "bear"))
        for k in ("resourceVersion", "uid", "creationTimestamp"):
            dep["metadata"].pop(k, None)
        dep["metadata"]["name"] = "bear-expr"
        dep["spec"]["selector"] = {"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["bear", "nothing"]},
            {"key": "tier", "operator": "DoesNotExist"}]}
        self.store.put("deployments", dep)
        return ids

    # -- cgroup: make the mini cluster's pod process findable by its container id --

    def cgroup_setup(self, pid, ids):
        root = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.procs") \
            else "/sys/fs/cgroup/pids"
        orig = None
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, ctrl, path = line.rstrip("\n").split(":", 2)
                if (root == "/sys/fs/cgroup" and ctrl == "") or \
                        (root != "/sys/fs/cgroup" and "pids" in ctrl.split(",")):
                    orig = path
        if orig is None:
            raise RuntimeError(f"pid {pid}: no cgroup in {root}")
        d1 = os.path.join(root, f"podenv-fake-cri-containerd-{ids['bear']}.scope")
        d2 = os.path.join(d1, f"cri-containerd-{ids['multi-app']}.scope")
        os.makedirs(d2)
        self.cgroup = {"pid": pid, "root": root, "orig": orig, "dirs": [d2, d1]}
        with open(os.path.join(self.dir, "cgroup.json"), "w") as f:
            json.dump(self.cgroup, f)
        with open(os.path.join(d2, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        log(f"pod pid {pid} moved to {d2} (was {orig})")

    def cgroup_restore(self):
        cg, self.cgroup = self.cgroup, None
        if cg:
            restore_cgroup(cg)
            try:
                os.unlink(os.path.join(self.dir, "cgroup.json"))
            except OSError:
                pass

    # -- auth --

    def authenticate(self, req):
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            user = self.tokens.get(auth[7:].strip())
            if user:
                return user
        cert = req.peercert
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def authorize(self, user, verb, resource, ns, name=""):
        for rule in self.settings["forbid"]:
            who, _, what = rule.rpartition("@")
            v, _, r = what.partition(":")
            if who and who != user:
                continue
            if v in ("*", verb) and r in ("*", resource):
                group = "batch" if resource.startswith("jobs") else \
                    "apps" if resource.startswith("deployments") else ""
                base, _, sub = resource.partition("/")
                qual = f"{base}.{group}" if group else base
                what = f'{qual} "{name}"' if name else qual
                msg = (f'{what} is forbidden: User "{user}" cannot {verb} resource "{base}"'
                       + (f' with subresource "{sub}"' if sub else "")
                       + f' in API group "{group}"'
                       + (f' in the namespace "{ns}"' if ns else ""))
                raise HTTPError(403, "Forbidden", msg,
                                {"name": name, "group": group, "kind": base})

    # -- events --

    def event(self, obj, reason, message, etype="Normal", component="kubelet"):
        md = obj["metadata"]
        t = now_iso()
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{md['name']}.{secrets.token_hex(8)}",
                           "namespace": md.get("namespace", "default")},
              "involvedObject": {"kind": obj["kind"], "name": md["name"],
                                 "namespace": md.get("namespace", "default"),
                                 "uid": md.get("uid", ""),
                                 "apiVersion": obj.get("apiVersion", "v1")},
              "reason": reason, "message": message, "type": etype,
              "source": {"component": component, "host": NODE},
              "reportingComponent": component, "reportingInstance": NODE,
              "firstTimestamp": t, "lastTimestamp": t, "eventTime": None, "count": 1}
        if obj["kind"] == "Pod" and obj.get("spec", {}).get("containers"):
            first = obj["spec"]["containers"][0]["name"]
            ev["involvedObject"]["fieldPath"] = f"spec.containers{{{first}}}"
        self.store.put("events", ev)

    # -- agent pods --

    def parse_agent_container(self, c, pod=None):
        """(argv for the real agent, listen port, container id, token, error)."""
        words = list(c.get("command") or []) + list(c.get("args") or [])
        env = {e.get("name"): e.get("value") for e in c.get("env") or [] if "value" in e}
        opts = {}
        pass_through = []
        i = 0
        while i < len(words):
            w = words[i]
            name, eq, val = w.partition("=")
            if name in ("--container-id", "-c", "--listen", "-t", "--communication-timeout",
                        "--log-level", "-l", "--workers", "--token-file", "--pid", "-p"):
                if not eq:
                    i += 1
                    val = words[i] if i < len(words) else ""
                opts[name] = val
                if name in ("-t", "--communication-timeout", "--log-level", "-l", "--workers"):
                    pass_through += [name, val]
            elif w == "--json-log":
                pass_through.append(w)
            i += 1
        cid = opts.get("--container-id") or opts.get("-c")
        if not cid and pod is not None and c.get("targetContainerName"):
            for st in pod["status"].get("containerStatuses", []):
                if st["name"] == c["targetContainerName"]:
                    cid = st.get("containerID")
        listen = opts.get("--listen")
        # podenv sends only the token's SHA-256 ("sha256:" + hex here); a
        # plain token (older launchers, hand-written Jobs) is accepted too.
        token = env.get("PODENV_AGENT_TOKEN")
        if not token and env.get("PODENV_AGENT_TOKEN_SHA256"):
            token = "sha256:" + env["PODENV_AGENT_TOKEN_SHA256"]
        if not listen:
            return None, None, cid, token, "no --listen ADDR:PORT in the container's args"
        try:
            port = int(listen.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            return None, None, cid, token, f"bad --listen {listen!r}"
        if not token:
            return None, port, cid, token, ("no PODENV_AGENT_TOKEN or PODENV_AGENT_TOKEN_SHA256 "
                                            "in the container's env")
        target = ["--container-id", cid] if cid else ["--pid", str(os.getpid())]
        return target + pass_through, port, cid, token, None

    def start_agent(self, ns, podname, container, kind):
        """Run podenv-agent for one container of a pod (thread body)."""
        delay = float(self.settings.get("agent_start_delay") or 0)
        if delay:
            time.sleep(delay)
        with self.store.lock:
            pod = self.store.get("pods", ns, podname)
            if pod is None:
                return
            specs = pod["spec"].get("ephemeralContainers" if kind == "ephemeral"
                                    else "containers", [])
            c = next((x for x in specs if x["name"] == container), None)
            target_pod = pod
        argv, port, cid, token, err = self.parse_agent_container(c, target_pod)
        if err:
            self.container_failed(ns, podname, container, kind, "CreateContainerConfigError",
                                  err, waiting=True)
            return
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        sock.close()
        tdir = os.path.join(self.dir, "agents")
        os.makedirs(tdir, exist_ok=True)
        tag = f"{ns}_{podname}_{container}"
        token_path = os.path.join(tdir, tag + ".token")
        agent_env = dict(os.environ)
        agent_env.pop("PODENV_AGENT_TOKEN", None)
        if token.startswith("sha256:"):
            # as the container would: the digest in the agent's environment
            agent_env["PODENV_AGENT_TOKEN_SHA256"] = token[len("sha256:"):]
            auth = []
        else:
            with open(token_path, "w") as f:
                f.write(token + "\n")
            os.chmod(token_path, 0o600)
            auth = ["--token-file", token_path]
        log_path = os.path.join(tdir, tag + ".log")
        cmd = [self.args.agent] + argv + ["--listen", f"127.0.0.1:{local_port}"] + auth + \
            list(self.settings.get("agent_extra_args") or [])
        runtime_id = "containerd://" + secrets.token_hex(32)
        a = Agent(ns=ns, pod=podname, container=container, kind=kind, proc=None,
                  listen_port=port, local_port=local_port, container_id=cid, argv=cmd,
                  token=token, log_path=log_path, ready=False, runtime_id=runtime_id)
        with self.lock:
            if self.stopping.is_set():
                return
            with open(log_path, "ab") as lf:
                try:
                    a.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              env=agent_env)
                except OSError as e:
                    self.container_failed(ns, podname, container, kind, "StartError",
                                          f"exec {self.args.agent}: {e}")
                    return
            self.agents.append(a)
        log(f"agent for {ns}/{podname}/{container}: pid {a.proc.pid}, "
            f"pod port {port} -> 127.0.0.1:{local_port}: {' '.join(cmd)}")
        deadline = time.time() + 30
        while time.time() < deadline and a.alive():
            try:
                socket.create_connection(("127.0.0.1", local_port), timeout=1).close()
                a.ready = True
                break
            except OSError:
                time.sleep(0.02)
        if a.ready:
            self.container_running(ns, podname, container, kind, runtime_id)
        code = a.proc.wait()
        self.container_exited(ns, podname, container, kind, code, a)

    def _status_list(self, pod, kind):
        key = "ephemeralContainerStatuses" if kind == "ephemeral" else "containerStatuses"
        return pod["status"].setdefault(key, [])

    def _container_status(self, pod, kind, container):
        lst = self._status_list(pod, kind)
        st = next((s for s in lst if s["name"] == container), None)
        if st is None:
            specs = pod["spec"].get("ephemeralContainers" if kind == "ephemeral"
                                    else "containers", [])
            c = next((x for x in specs if x["name"] == container), {})
            st = {"name": container, "ready": False, "started": False, "restartCount": 0,
                  "image": c.get("image", ""), "imageID": "",
                  "state": {"waiting": {"reason": "ContainerCreating"}}}
            lst.append(st)
        return st

    def _set_conditions(self, pod, ready, scheduled=True, reason=None, message=None):
        t = now_iso()
        conds = []
        for ty in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                   "PodScheduled"):
            ok = scheduled if ty == "PodScheduled" else (
                True if ty == "Initialized" else ready)
            c = {"type": ty, "status": "True" if ok else "False", "lastTransitionTime": t}
            if ty == "PodScheduled" and not scheduled:
                c.update(reason=reason, message=message)
            if not scheduled and ty != "PodScheduled":
                continue
            conds.append(c)
        pod["status"]["conditions"] = conds

    def container_running(self, ns, podname, container, kind, runtime_id):
        with self.store.lock:
            pod = self.store.get("pods", ns, podname)
            if pod is None:
                return
            st = self._container_status(pod, kind, container)
            st.update(ready=kind != "ephemeral", started=True, containerID=runtime_id,
                      state={"running": {"startedAt": now_iso()}},
                      imageID=st.get("image", "") + "@sha256:" + "cd" * 32)
            if kind != "ephemeral":
                pod["status"].update(phase="Running", podIP="10.213.0.50",
                                     podIPs=[{"ip": "10.213.0.50"}])
                self._set_conditions(pod, True)
            self.store.put("pods", pod)
            img = st.get("image", "")
            self.event(pod, "Pulled", f'Container image "{img}" already present on machine')
            self.event(pod, "Created", f"Created container {container}")
            self.event(pod, "Started", f"Started container {container}")
            self.job_update_from_pod(pod)

    def container_exited(self, ns, podname, container, kind, code, agent):
        with self.store.lock:
            pod = self.store.get("pods", ns, podname)
            if pod is None:
                return
            tail = ""
            try:
                with open(agent.log_path, "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace").strip()
            except OSError:
                pass
            st = self._container_status(pod, kind, container)
            reason = "Completed" if code == 0 else "Error"
            st.update(ready=False, started=False, state={"terminated": {
                "exitCode": code if code >= 0 else 128 - code, "reason": reason,
                "message": tail[-500:], "finishedAt": now_iso(),
                "containerID": st.get("containerID", "")}})
            if kind != "ephemeral":
                pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
                self._set_conditions(pod, False)
            self.store.put("pods", pod)
            if code != 0:
                self.event(pod, "BackOff", f"Back-off restarting failed container {container} "
                           f"in pod {podname}: exit code {code}: {tail[-300:]}", "Warning")
            self.job_update_from_pod(pod)

    def container_failed(self, ns, podname, container, kind, reason, message, waiting=True):
        with self.store.lock:
            pod = self.store.get("pods", ns, podname)
            if pod is None:
                return
            st = self._container_status(pod, kind, container)
            st["state"] = {"waiting": {"reason": reason, "message": message}}
            self.store.put("pods", pod)
            self.event(pod, "Failed", f"Error: {message}", "Warning")

    def job_update_from_pod(self, pod):
        owner = next((o for o in pod["metadata"].get("ownerReferences", [])
                      if o.get("kind") == "Job"), None)
        if not owner:
            return
        ns = pod["metadata"]["namespace"]
        job = self.store.get("jobs", ns, owner["name"])
        if job is None:
            return
        phase = pod["status"].get("phase")
        s = job["status"]
        t = now_iso()
        if phase == "Running":
            s.update(active=1, ready=1)
        elif phase in ("Succeeded", "Failed"):
            s.pop("active", None)
            s["ready"] = 0
            s["succeeded" if phase == "Succeeded" else "failed"] = 1
            if phase == "Succeeded":
                s["completionTime"] = t
                conds = [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", None)]
            else:
                conds = [("FailureTarget", "BackoffLimitExceeded"),
                         ("Failed", "BackoffLimitExceeded")]
            s["conditions"] = [{"type": ty, "status": "True", "lastProbeTime": t,
                                "lastTransitionTime": t, "reason": r or ty,
                                "message": "Job has reached the specified backoff limit"
                                if r == "BackoffLimitExceeded" else ""}
                               for ty, r in conds]
            self.finished[(ns, owner["name"])] = time.time()
            self.event(job, "Completed" if phase == "Succeeded" else "BackoffLimitExceeded",
                       "Job completed" if phase == "Succeeded"
                       else "Job has reached the specified backoff limit",
                       "Normal" if phase == "Succeeded" else "Warning", "job-controller")
        self.store.put("jobs", job)

    def new_pod(self, ns, name, template, owner=None, extra_labels=None):
        spec = copy.deepcopy(template.get("spec") or {})
        md = copy.deepcopy(template.get("metadata") or {})
        labels = dict(md.get("labels") or {}, **(extra_labels or {}))
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "labels": labels,
                            "annotations": md.get("annotations") or {}},
               "spec": spec,
               "status": {"phase": "Pending", "qosClass": "BestEffort"}}
        if owner:
            pod["metadata"]["ownerReferences"] = [owner]
        return pod

    def run_pod(self, pod, failure):
        """Schedule and start a freshly created pod (agent pods)."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        spec = pod["spec"]
        containers = spec.get("containers") or []
        with self.store.lock:
            if failure == "Unschedulable":
                msg = ("0/1 nodes are available: 1 node(s) had untolerated taint "
                       "{node.kubernetes.io/unschedulable: }. preemption: 0/1 nodes are "
                       "available: 1 Preemption is not helpful for scheduling.")
                self._set_conditions(pod, False, scheduled=False, reason="Unschedulable",
                                     message=msg)
                self.store.put("pods", pod)
                self.event(pod, "FailedScheduling", msg, "Warning", "default-scheduler")
                return
            spec.setdefault("nodeName", NODE)
            pod["status"].update(hostIP="10.213.0.1", hostIPs=[{"ip": "10.213.0.1"}],
                                 startTime=now_iso())
            self._set_conditions(pod, False)
            for c in containers:
                self._container_status(pod, "container", c["name"])
            self.store.put("pods", pod)
            self.event(pod, "Scheduled", f"Successfully assigned {ns}/{name} to "
                       f"{spec['nodeName']}", component="default-scheduler")
            if failure in ("ImagePullBackOff", "ErrImagePull"):
                for c in containers:
                    img = c.get("image", "")
                    st = self._container_status(pod, "container", c["name"])
                    msg = (f'Back-off pulling image "{img}"' if failure == "ImagePullBackOff"
                           else f'failed to pull and unpack image "{img}": not found')
                    st["state"] = {"waiting": {"reason": failure, "message": msg}}
                    self.event(pod, "Pulling", f'Pulling image "{img}"')
                    self.event(pod, "Failed", f'Failed to pull image "{img}": rpc error: '
                               f'code = NotFound desc = failed to pull and unpack image '
                               f'"{img}": not found', "Warning")
                    self.event(pod, "Failed", "Error: " + failure, "Warning")
                    if failure == "ImagePullBackOff":
                        self.event(pod, "BackOff", f'Back-off pulling image "{img}"',
                                   "Warning")
                self.store.put("pods", pod)
                return
            if failure == "ContainerCreating":
                return
        for c in containers:
            threading.Thread(target=self.start_agent, args=(ns, name, c["name"], "container"),
                             daemon=True).start()

    def create_job(self, ns, body, user):
        if body.get("kind") not in (None, "Job"):
            raise HTTPError(400, "BadRequest", f"kind {body.get('kind')!r} is not Job")
        md = body.setdefault("metadata", {})
        name = md.get("name") or (md.get("generateName", "") + secrets.token_hex(3)[:5]
                                  if md.get("generateName") else "")
        causes = []
        if not name:
            causes.append(("metadata.name", "name or generateName is required"))
        tmpl = (body.get("spec") or {}).get("template") or {}
        pspec = tmpl.get("spec") or {}
        if not pspec.get("containers"):
            causes.append(("spec.template.spec.containers", "Required value"))
        if pspec.get("restartPolicy") not in ("Never", "OnFailure"):
            causes.append(("spec.template.spec.restartPolicy",
                           f'Unsupported value: "{pspec.get("restartPolicy", "")}": supported '
                           'values: "OnFailure", "Never"'))
        if causes:
            raise HTTPError(422, "Invalid", f'Job.batch "{name}" is invalid: ' + "; ".join(
                f"{f}: {m}" for f, m in causes), {
                "name": name, "group": "batch", "kind": "Job",
                "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                           for f, m in causes]})
        with self.store.lock:
            if self.store.get("jobs", ns, name):
                raise HTTPError(409, "AlreadyExists", f'jobs.batch "{name}" already exists',
                                {"name": name, "group": "batch", "kind": "jobs"})
            job = copy.deepcopy(body)
            job.update(apiVersion="batch/v1", kind="Job")
            job["metadata"].update(name=name, namespace=ns, uid=str(uuid.uuid4()),
                                   generation=1)
            uid = job["metadata"]["uid"]
            sel_labels = {"batch.kubernetes.io/controller-uid": uid}
            pod_labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                          "batch.kubernetes.io/job-name": name, "job-name": name}
            spec = job["spec"]
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("selector", {"matchLabels": sel_labels})
            tm = spec["template"].setdefault("metadata", {})
            tm["labels"] = dict(tm.get("labels") or {}, **pod_labels)
            job["status"] = {"startTime": now_iso(), "active": 0, "ready": 0,
                             "uncountedTerminatedPods": {}}
            self.store.put("jobs", job)
            failure = self.settings.get("job_failure")
            if failure == "FailedCreate":
                self.event(job, "FailedCreate", f'Error creating: pods "{name}-xxxxx" is '
                           'forbidden: violates PodSecurity "baseline:latest": host namespaces '
                           '(hostPID=true), privileged (container "podenv-agent" must not set '
                           'securityContext.privileged=true)', "Warning", "job-controller")
                return copy.deepcopy(job)
            podname = f"{name}-{secrets.token_hex(4)[:5]}"
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                     "controller": True, "blockOwnerDeletion": True}
            pod = self.new_pod(ns, podname, spec["template"], owner)
            self.store.put("pods", pod)
            self.event(job, "SuccessfulCreate", f"Created pod: {podname}",
                       component="job-controller")
            out = copy.deepcopy(job)
        threading.Thread(target=self.run_pod, args=(pod, failure), daemon=True).start()
        return out

    def create_pod(self, ns, body):
        md = body.setdefault("metadata", {})
        name = md.get("name") or (md.get("generateName", "") + secrets.token_hex(3)[:5]
                                  if md.get("generateName") else "")
        if not name:
            raise HTTPError(422, "Invalid", "Pod is invalid: metadata.name: Required value")
        if not (body.get("spec") or {}).get("containers"):
            raise HTTPError(422, "Invalid", f'Pod "{name}" is invalid: spec.containers: '
                            'Required value')
        with self.store.lock:
            if self.store.get("pods", ns, name):
                raise HTTPError(409, "AlreadyExists", f'pods "{name}" already exists',
                                {"name": name, "group": "", "kind": "pods"})
            pod = self.new_pod(ns, name, body)
            self.store.put("pods", pod)
            out = copy.deepcopy(pod)
        failure = self.settings.get("job_failure")
        if failure == "FailedCreate":
            failure = None
        threading.Thread(target=self.run_pod, args=(pod, failure), daemon=True).start()
        return out

    def kill_agents(self, ns, podname, container=None):
        with self.lock:
            mine = [a for a in self.agents if a.ns == ns and a.pod == podname
                    and (container is None or a.container == container)]
        for a in mine:
            stop_process(a.proc)

    def delete_pod(self, ns, name, reason="api"):
        pod = self.store.delete("pods", ns, name)
        if pod is None:
            return None
        self.kill_agents(ns, name)
        self.deleted.append({"resource": "pods", "namespace": ns, "name": name,
                             "reason": reason, "time": time.time()})
        return pod

    def delete_job(self, ns, name, propagation, reason="api"):
        job = self.store.delete("jobs", ns, name)
        if job is None:
            return None
        self.finished.pop((ns, name), None)
        uid = job["metadata"]["uid"]
        self.deleted.append({"resource": "jobs", "namespace": ns, "name": name,
                             "reason": reason, "propagation": propagation,
                             "time": time.time()})
        for pod in self.store.list("pods", ns):
            owners = pod["metadata"].get("ownerReferences", [])
            if any(o.get("uid") == uid for o in owners):
                if propagation in ("Background", "Foreground"):
                    self.delete_pod(ns, pod["metadata"]["name"], reason=f"job {reason}")
                else:  # batch/v1 default: orphan the pods
                    with self.store.lock:
                        pod["metadata"]["ownerReferences"] = [
                            o for o in owners if o.get("uid") != uid]
                        self.store.put("pods", pod)
        return job

    def reaper(self):
        """ttlSecondsAfterFinished: delete finished jobs (and their pods) when it runs out."""
        while not self.stopping.wait(0.1):
            now = time.time()
            for (ns, name), t in list(self.finished.items()):
                job = self.store.get("jobs", ns, name)
                if job is None:
                    self.finished.pop((ns, name), None)
                    continue
                ttl = job["spec"].get("ttlSecondsAfterFinished")
                if ttl is not None and now >= t + float(ttl):
                    log(f"job {ns}/{name}: ttlSecondsAfterFinished={ttl} ran out, deleting")
                    self.delete_job(ns, name, "Foreground", reason="ttl")

    def patch_ephemeral(self, ns, name, ctype, body, put=False):
        if not self.settings.get("ephemeral_containers", True):
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        with self.store.lock:
            pod = self.store.get("pods", ns, name)
            if pod is None:
                raise not_found("pods", name)
            old = pod["spec"].get("ephemeralContainers") or []
            if put:
                new = copy.deepcopy((body.get("spec") or {}).get("ephemeralContainers") or [])
            elif "json-patch" in ctype:
                new = copy.deepcopy(old)
                for op in body if isinstance(body, list) else []:
                    if op.get("op") != "add" or not op.get("path", "").startswith(
                            "/spec/ephemeralContainers"):
                        raise HTTPError(422, "Invalid", f"unsupported patch op {op!r}")
                    if op["path"] == "/spec/ephemeralContainers":
                        new = copy.deepcopy(op["value"])
                    else:
                        new.append(copy.deepcopy(op["value"]))
            elif "merge-patch" in ctype and "strategic" not in ctype:
                new = copy.deepcopy((body.get("spec") or {}).get("ephemeralContainers") or [])
            else:  # strategic merge patch: the list merges by name
                new = copy.deepcopy(old)
                for c in (body.get("spec") or {}).get("ephemeralContainers") or []:
                    idx = next((i for i, x in enumerate(new) if x.get("name") == c.get("name")),
                               None)
                    if idx is None:
                        new.append(copy.deepcopy(c))
                    else:
                        new[idx] = dict(new[idx], **c)
            old_names = [c["name"] for c in old]
            new_names = [c.get("name") for c in new]
            if any(n not in new_names for n in old_names):
                raise HTTPError(422, "Invalid", f'Pod "{name}" is invalid: '
                                'spec.ephemeralContainers: Forbidden: existing ephemeral '
                                'containers may not be removed')
            for c in new:
                if c.get("name") in old_names and c != next(
                        o for o in old if o["name"] == c["name"]):
                    raise HTTPError(422, "Invalid", f'Pod "{name}" is invalid: '
                                    'spec.ephemeralContainers: Forbidden: existing ephemeral '
                                    'containers may not be changed')
                for bad in ("ports", "resources", "livenessProbe", "readinessProbe",
                            "startupProbe", "lifecycle"):
                    if c.get(bad) and c.get("name") not in old_names:
                        raise HTTPError(422, "Invalid", f'Pod "{name}" is invalid: spec.'
                                        f'ephemeralContainers[{new.index(c)}].{bad}: '
                                        'Forbidden: cannot be set for an Ephemeral Container')
            added = [c for c in new if c.get("name") not in old_names]
            pod["spec"]["ephemeralContainers"] = new
            for c in added:
                self._container_status(pod, "ephemeral", c["name"])
            self.store.put("pods", pod)
            out = copy.deepcopy(pod)
        failure = self.settings.get("job_failure")
        for c in added:
            if failure in ("ImagePullBackOff", "ErrImagePull"):
                self.container_failed(ns, name, c["name"], "ephemeral", failure,
                                      f'Back-off pulling image "{c.get("image", "")}"')
                continue
            if failure in ("ContainerCreating", "Unschedulable", "FailedCreate"):
                continue
            threading.Thread(target=self.start_agent, args=(ns, name, c["name"], "ephemeral"),
                             daemon=True).start()
        return out

    def forward_target(self, ns, podname, port):
        """Where pod port `port` is reached from here: (host, port) or an error string."""
        with self.lock:
            for a in reversed(self.agents):
                if a.ns == ns and a.pod == podname and a.listen_port == port and a.alive():
                    return ("127.0.0.1", a.local_port)
        return (f"failed to connect to localhost:{port} inside namespace of pod {podname}: "
                "connect: connection refused (the fake only forwards to agent ports)")

    def state(self):
        with self.lock:
            agents = [a.summary() for a in self.agents]
        return {"settings": self.settings, "received": self.received, "deleted": self.deleted,
                "agents": agents, "container_ids": self.container_ids,
                "objects": {k: self.store.list(k) for k in KINDS}}

    def shutdown(self):
        self.stopping.set()
        with self.lock:
            agents = list(self.agents)
        for a in agents:
            stop_process(a.proc)
        self.cgroup_restore()


def stop_process(proc, grace=2.0):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def restore_cgroup(cg):
    """Move the pod process back where it was and remove our groups."""
    pid, root = cg["pid"], cg["root"]
    try:
        with open(os.path.join(root + cg["orig"], "cgroup.procs"), "w") as f:
            f.write(str(pid))
    except OSError as e:
        if os.path.exists(f"/proc/{pid}"):
            log(f"could not move pid {pid} back to {cg['orig']}: {e}")
    for d in cg["dirs"]:
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
    log(f"pod pid {pid} back in {cg['orig']}")


# --- HTTP ----------------------------------------------------------------------------------

class Request:
    pass


class Conn:
    """One client connection: HTTP/1.1 requests, then maybe an upgrade."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise EOFError
            try:
                self._fill()
            except EOFError:
                if not self.buf:
                    return None
                raise
        end = self.buf.index(b"\r\n\r\n")
        head = self.buf[:end].decode("latin-1")
        del self.buf[:end + 4]
        lines = head.split("\r\n")
        req = Request()
        req.method, req.target, req.version = lines[0].split(" ", 2)
        req.headers = {}
        req.header_list = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k, v = k.strip().lower(), v.strip()
            req.header_list.append((k, v))
            req.headers[k] = req.headers[k] + ", " + v if k in req.headers else v
        u = urllib.parse.urlsplit(req.target)
        req.path = u.path
        req.query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                i = self.buf.index(b"\r\n")
                n = int(self.buf[:i].split(b";")[0], 16)
                del self.buf[:i + 2]
                while len(self.buf) < n + 2:
                    self._fill()
                body += self.buf[:n]
                del self.buf[:n + 2]
                if n == 0:
                    break
            req.body = bytes(body)
        else:
            n = int(req.headers.get("content-length", "0") or 0)
            while len(self.buf) < n:
                self._fill()
            req.body = bytes(self.buf[:n])
            del self.buf[:n]
        return req

    def send_response(self, code, body=b"", headers=None, reason=None):
        reasons = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request",
                   401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed", 409: "Conflict", 415: "Unsupported Media Type",
                   422: "Unprocessable Entity", 500: "Internal Server Error"}
        h = {"Content-Type": "application/json", "Content-Length": str(len(body)),
             "Cache-Control": "no-cache, private", "Date": time.strftime(
                 "%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
        h.update(headers or {})
        out = f"HTTP/1.1 {code} {reason or reasons.get(code, 'Status')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(out.encode("latin-1") + body)


class Server:
    def __init__(self, fake):
        self.fake = fake

    def serve_conn(self, raw, addr):
        try:
            raw.settimeout(30)
            sock = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log(f"TLS handshake from {addr}: {e}")
            raw.close()
            return
        try:
            sock.settimeout(300)
            conn = Conn(sock)
            peercert = sock.getpeercert()
            while not self.fake.stopping.is_set():
                req = conn.read_request()
                if req is None:
                    break
                req.peercert = peercert
                if not self.handle(conn, req):
                    break
        except (EOFError, ConnectionError, ssl.SSLError, socket.timeout, OSError):
            pass
        except Exception:
            log("connection error:\n" + traceback.format_exc())
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def handle(self, conn, req):
        """Serve one request; False when the connection is done."""
        fake = self.fake
        user = None
        code = 500
        try:
            if req.path.startswith("/fake/"):
                user = "(control)"
                code, obj = self.control(req)
            else:
                user = fake.authenticate(req)
                if user is None:
                    raise HTTPError(401, "Unauthorized", "Unauthorized")
                if req.path.endswith("/portforward"):
                    code = self.portforward(conn, req, user)
                    return code != 101 and self._keep(req)
                if req.query.get("watch", [""])[0] in ("1", "true"):
                    code = 200
                    self.watch(conn, req, user)
                    return False
                code, obj = self.route(req, user)
            body = json.dumps(obj).encode()
            conn.send_response(code, body)
        except HTTPError as e:
            code = e.code
            conn.send_response(e.code, json.dumps(e.body).encode(), e.headers)
        except (ConnectionError, ssl.SSLError, EOFError, socket.timeout):
            raise
        except Exception:
            tb = traceback.format_exc()
            log("request failed:\n" + tb)
            code = 500
            conn.send_response(500, json.dumps(status_obj(500, "InternalError", tb)).encode())
        finally:
            if not getattr(req, "logged", False):
                self.log_request(req, user, code)
        return self._keep(req)

    def log_request(self, req, user, code):
        req.logged = True
        with self.fake.lock:
            self.fake.requests.append({"method": req.method, "path": req.path,
                                       "query": req.target.partition("?")[2], "user": user,
                                       "code": code, "agent": req.headers.get("user-agent", ""),
                                       "upgrade": req.headers.get("upgrade", ""),
                                       "time": time.time()})

    @staticmethod
    def _keep(req):
        return req.headers.get("connection", "").lower() != "close"

    def control(self, req):
        fake = self.fake
        if req.path == "/fake/state":
            return 200, fake.state()
        if req.path == "/fake/requests":
            with fake.lock:
                return 200, list(fake.requests)
        if req.path == "/fake/control" and req.method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(req.body or b"{}")
            except ValueError as e:
                raise HTTPError(400, "BadRequest", f"the body is not JSON: {e}")
            for k, v in body.items():
                if k not in DEFAULT_SETTINGS:
                    raise HTTPError(400, "BadRequest", f"unknown setting {k!r}")
                if k == "job_failure" and v not in (None,) + JOB_FAILURES:
                    raise HTTPError(400, "BadRequest", f"job_failure must be one of "
                                    f"{JOB_FAILURES} or null")
                if k == "node_pods":
                    if not isinstance(v, int) or v < 0:
                        raise HTTPError(400, "BadRequest", "node_pods must be a count")
                    with fake.store.lock:
                        node = fake.store.get("nodes", "", NODE)
                        node["status"]["capacity"]["pods"] = str(v)
                        node["status"]["allocatable"]["pods"] = str(v)
                        fake.store.put("nodes", node)
                fake.settings[k] = v
            return 200, fake.settings
        if req.path == "/fake/control":
            return 200, fake.settings
        raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})

    # -- REST --

    def route(self, req, user):
        fake, p, m = self.fake, req.path.rstrip("/") or "/", req.method
        if p == "/version":
            return 200, VERSION
        if p in DISCOVERY:
            if m != "GET":
                raise HTTPError(405, "MethodNotAllowed", "method not allowed")
            return 200, DISCOVERY[p]
        if p in ("/healthz", "/livez", "/readyz"):
            return 200, "ok"
        # /api/v1/... or /apis/G/v1/...
        parts = p.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            rest, group = parts[2:], ""
        elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1" and \
                parts[1] in ("apps", "batch"):
            rest, group = parts[3:], parts[1]
        else:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), \
            "/".join(rest[2:])
        if resource not in KINDS or KINDS[resource][3] != group or \
                (ns is not None and resource in CLUSTER_SCOPED):
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        if ns is not None and not fake.store.get("namespaces", "", ns):
            if not (m == "GET" and not name):
                raise not_found("namespaces", ns)
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete",
                "PATCH": "patch", "PUT": "update"}.get(m)
        if verb is None:
            raise HTTPError(405, "MethodNotAllowed", f"method {m} not allowed")
        fake.authorize(user, verb, resource + (f"/{sub}" if sub else ""), ns or "", name)
        store_ns = "" if resource in CLUSTER_SCOPED else ns
        if m == "GET" and not name:
            return 200, self.list(resource, store_ns, req)
        if m == "GET":
            obj = fake.store.get(resource, store_ns or "", name)
            if obj is None:
                raise not_found(resource, name, group)
            return 200, obj
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError as e:
            raise HTTPError(400, "BadRequest", f"the body is not JSON: {e}")
        if m == "POST" and not name:
            if ns is None:
                raise HTTPError(405, "MethodNotAllowed", "create needs a namespace")
            fake.received.append({"verb": "create", "resource": resource, "namespace": ns,
                                  "user": user, "body": copy.deepcopy(body),
                                  "time": time.time()})
            if resource == "jobs":
                return 201, fake.create_job(ns, body, user)
            if resource == "pods":
                return 201, fake.create_pod(ns, body)
            raise HTTPError(405, "MethodNotAllowed", f"the fake does not create {resource}")
        if resource == "pods" and sub == "ephemeralcontainers" and m in ("PATCH", "PUT"):
            fake.received.append({"verb": verb, "resource": "pods/ephemeralcontainers",
                                  "namespace": ns, "name": name, "user": user,
                                  "content_type": req.headers.get("content-type", ""),
                                  "body": copy.deepcopy(body), "time": time.time()})
            return 200, fake.patch_ephemeral(ns, name, req.headers.get("content-type", ""),
                                             body, put=m == "PUT")
        if m == "DELETE" and name and not sub:
            prop = req.query.get("propagationPolicy", [None])[0]
            if isinstance(body, dict) and body.get("propagationPolicy"):
                prop = body["propagationPolicy"]
            if resource == "jobs":
                obj = fake.delete_job(ns, name, prop)
            elif resource == "pods":
                obj = fake.delete_pod(ns, name)
            else:
                raise HTTPError(405, "MethodNotAllowed", f"the fake does not delete {resource}")
            if obj is None:
                raise not_found(resource, name, group)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success", "details": {
                             "name": name, "group": group, "kind": resource,
                             "uid": obj["metadata"]["uid"]}}
        raise HTTPError(405, "MethodNotAllowed", f"{m} {req.path} is not supported by the fake")

    def _filters(self, req):
        lsel = label_matcher(req.query.get("labelSelector", [""])[0])
        fsel = field_matcher(req.query.get("fieldSelector", [""])[0])
        return lambda o: lsel(o["metadata"].get("labels")) and fsel(o)

    def list(self, resource, ns, req):
        match = self._filters(req)
        with self.fake.store.lock:
            items = [o for o in self.fake.store.list(resource, ns) if match(o)]
            rv = self.fake.store.rv
        _, kind, list_kind, group = KINDS[resource]
        return {"kind": list_kind, "apiVersion": f"{group}/v1" if group else "v1",
                "metadata": {"resourceVersion": str(rv)}, "items": items}

    def watch(self, conn, req, user):
        fake = self.fake
        p = req.path.strip("/").split("/")
        rest = p[2:] if p[0] == "api" else p[3:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        resource = rest[0] if rest else ""
        if resource not in KINDS:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        fake.authorize(user, "watch", resource, ns or "")
        match = self._filters(req)
        if len(rest) > 1:  # .../pods/NAME?watch=1 (legacy form)
            name = rest[1]
            inner = match
            match = lambda o: o["metadata"]["name"] == name and inner(o)  # noqa: E731
        timeout = min(float(req.query.get("timeoutSeconds", ["1800"])[0]), 1800)
        since = req.query.get("resourceVersion", [""])[0]
        conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n")
        self.log_request(req, user, 200)

        def send(etype, obj):
            data = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
            conn.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

        store_ns = None if resource in CLUSTER_SCOPED else ns
        with fake.store.lock:
            if since in ("", "0"):
                pos = fake.store.rv
                initial = [copy.deepcopy(o) for o in fake.store.list(resource, store_ns)
                           if match(o)]
            else:
                pos, initial = int(since), []
        for o in initial:
            send("ADDED", o)
        deadline = time.time() + timeout
        while time.time() < deadline and not fake.stopping.is_set():
            if client_gone(conn.sock):
                return
            with fake.store.lock:
                fake.store.cond.wait(0.5)
                evs = [e for e in fake.store.log if e[0] > pos]
                if evs:
                    pos = evs[-1][0]
            for _, etype, res, obj in evs:
                if res != resource or (store_ns is not None and
                                       obj["metadata"].get("namespace") != store_ns):
                    continue
                if match(obj):
                    send(etype, obj)
        conn.sock.sendall(b"0\r\n\r\n")

    # -- port-forward --

    def portforward(self, conn, req, user):
        fake = self.fake
        parts = req.path.strip("/").split("/")
        if len(parts) != 7 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            raise HTTPError(404, "NotFound", "the server could not find the requested resource",
                            {})
        ns, name = parts[3], parts[5]
        if req.method not in ("GET", "POST"):
            raise HTTPError(405, "MethodNotAllowed", "port-forward needs GET or POST")
        fake.authorize(user, "create", "pods/portforward", ns, name)
        if fake.settings.get("portforward") == "refuse":
            raise HTTPError(403, "Forbidden", f'pods "{name}" is forbidden: User "{user}" cannot '
                            f'create resource "pods/portforward" in API group "" in the '
                            f'namespace "{ns}"', {"name": name, "group": "", "kind": "pods"})
        pod = fake.store.get("pods", ns, name)
        if pod is None:
            raise not_found("pods", name)
        if not pod["spec"].get("nodeName"):
            raise HTTPError(400, "BadRequest", f"pod {name} does not have a host assigned")
        if pod["status"].get("phase") != "Running":
            raise HTTPError(400, "BadRequest", f"unable to upgrade connection: pod {name} is "
                            f"not running (phase {pod['status'].get('phase')})")
        uid = pod["metadata"]["uid"]
        upgrade = req.headers.get("upgrade", "").lower()
        if upgrade == "websocket":
            protos = [p.strip() for p in req.headers.get("sec-websocket-protocol", "").split(",")
                      if p.strip()]
            key = req.headers.get("sec-websocket-key")
            if req.method != "GET" or not key or \
                    "upgrade" not in req.headers.get("connection", "").lower():
                raise HTTPError(400, "BadRequest", "bad websocket handshake")
            chosen = None
            for pr in protos:
                if pr in ("v4.channel.k8s.io", "v4.base64.channel.k8s.io"):
                    chosen = pr
                    break
                if pr == "SPDY/3.1+portforward.k8s.io" and fake.settings.get(
                        "spdy_over_websocket", True):
                    chosen = pr
                    break
            if protos and chosen is None:
                raise HTTPError(400, "BadRequest", "unable to upgrade connection: none of the "
                                f"offered subprotocols {protos} is supported")
            ports = []
            if chosen != "SPDY/3.1+portforward.k8s.io":
                for v in req.query.get("ports", []):
                    for x in v.split(","):
                        try:
                            n = int(x)
                        except ValueError:
                            n = 0
                        if not 0 < n < 65536:
                            raise HTTPError(400, "BadRequest", f"invalid port {x!r}")
                        ports.append(n)
                if not ports:
                    raise HTTPError(400, "BadRequest", "query parameter \"port\" is required")
            hdr = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: " + wire.ws_accept(key) + "\r\n")
            if chosen:
                hdr += f"Sec-WebSocket-Protocol: {chosen}\r\n"
            conn.sock.sendall((hdr + "\r\n").encode())
            self.log_request(req, user, 101)
            relay = Relay(fake, conn, ns, name, uid)
            if chosen == "SPDY/3.1+portforward.k8s.io":
                relay.run_spdy(tunnel=True)
            else:
                relay.run_ws_channels(ports, base64_=chosen == "v4.base64.channel.k8s.io")
            return 101
        if upgrade == "spdy/3.1":
            offered = [p.strip() for k, v in req.header_list if k == "x-stream-protocol-version"
                       for p in v.split(",")]
            if "portforward.k8s.io" not in offered:
                raise HTTPError(403, "Forbidden", f"unable to upgrade: unable to negotiate "
                                f"protocol: client supports {offered}, server accepts "
                                "[portforward.k8s.io]",
                                headers={"X-Accepted-Stream-Protocol-Versions":
                                         "portforward.k8s.io"})
            conn.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: SPDY/3.1\r\n"
                              b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
            self.log_request(req, user, 101)
            Relay(fake, conn, ns, name, uid).run_spdy(tunnel=False)
            return 101
        raise HTTPError(400, "BadRequest", "unable to upgrade connection: missing upgrade headers")


def client_gone(sock):
    """Has the client closed a connection it should not be sending on?"""
    if not sock.pending():
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
    sock.settimeout(0)
    try:
        return sock.recv(4096) == b""
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(30)


class Backend:
    def __init__(self, sock):
        self.sock, self.closed, self.wr_closed = sock, False, False


class Relay:
    """Everything after a port-forward upgrade, on one thread: the client's TLS
    socket and the sockets to the pod ports, multiplexed with select."""

    def __init__(self, fake, conn, ns, pod, uid):
        self.fake, self.sock, self.inbuf = fake, conn.sock, bytearray(conn.buf)
        self.ns, self.pod, self.uid = ns, pod, uid
        self.done = False

    # client side I/O
    def send(self, data):
        self.sock.settimeout(30)
        self.sock.sendall(data)

    def recv(self):
        """Bytes from the client: b"" at EOF, None when nothing is ready."""
        self.sock.settimeout(0)
        try:
            return self.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        except (ConnectionError, ssl.SSLError, OSError):
            return b""

    def dial(self, port):
        t = self.fake.forward_target(self.ns, self.pod, port)
        if isinstance(t, str):
            return None, t
        try:
            s = socket.create_connection(t, timeout=5)
            s.settimeout(30)
            return Backend(s), None
        except OSError as e:
            return None, f"dial tcp {t[0]}:{t[1]}: {e}"

    def loop(self, backends, on_client, on_backend, finished):
        """Run until finished() or the client goes away."""
        if self.inbuf:
            data, self.inbuf = bytes(self.inbuf), bytearray()
            on_client(data)
        while not self.done and not finished() and not self.fake.stopping.is_set():
            rl = [self.sock] + [b.sock for b in backends() if not b.closed]
            if self.sock.pending():
                ready = [self.sock]
            else:
                ready, _, _ = select.select(rl, [], [], 0.5)
            for s in ready:
                if s is self.sock:
                    data = self.recv()
                    if data is None:
                        continue
                    if not data:
                        self.done = True
                        break
                    on_client(data)
                else:
                    b = next(b for b in backends() if b.sock is s)
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    on_backend(b, data)
        for b in backends():
            if not b.closed:
                b.closed = True
                b.sock.close()

    # WebSocket `v4.channel.k8s.io`: one TCP connection per listed port
    def run_ws_channels(self, ports, base64_=False):
        state = {"wsbuf": bytearray(), "closed": False}
        backends = {}

        def wsend(ch, payload):
            if base64_:
                self.send(wire.ws_frame(wire.OP_TEXT, bytes([48 + ch]) +
                                        base64.b64encode(payload)))
            else:
                self.send(wire.ws_frame(wire.OP_BINARY, bytes([ch]) + payload))

        for i, port in enumerate(ports):
            pb = port.to_bytes(2, "little")
            wsend(2 * i, pb)
            wsend(2 * i + 1, pb)
        for i, port in enumerate(ports):
            b, err = self.dial(port)
            if b is None:
                wsend(2 * i + 1, f"error forwarding port {port} to pod {self.pod}, uid "
                      f"{self.uid}: {err}".encode())
            else:
                b.index = i
                backends[i] = b

        def on_client(data):
            state["wsbuf"] += data
            while True:
                f = wire.ws_parse(state["wsbuf"])
                if f is None:
                    return
                fin, op, payload, masked, used = f
                del state["wsbuf"][:used]
                if not masked:
                    self.send(wire.ws_frame(wire.OP_CLOSE, (1002).to_bytes(2, "big")))
                    self.done = True
                    return
                if op == wire.OP_CLOSE:
                    self.send(wire.ws_frame(wire.OP_CLOSE, payload[:2]))
                    self.done = True
                    return
                if op == wire.OP_PING:
                    self.send(wire.ws_frame(wire.OP_PONG, payload))
                    continue
                if op not in (wire.OP_BINARY, wire.OP_TEXT) or not payload:
                    continue
                if op == wire.OP_TEXT:
                    ch, data_ = payload[0] - 48, base64.b64decode(payload[1:])
                else:
                    ch, data_ = payload[0], payload[1:]
                b = backends.get(ch // 2) if ch % 2 == 0 else None
                if b is not None and not b.closed and data_:
                    try:
                        b.sock.sendall(data_)
                    except OSError:
                        pass

        def on_backend(b, data):
            if data:
                wsend(2 * b.index, data)
            else:
                b.closed = True
                b.sock.close()

        def finished():
            if all(b.closed for b in backends.values()):
                try:
                    self.send(wire.ws_frame(wire.OP_CLOSE, (1000).to_bytes(2, "big")))
                except OSError:
                    pass
                return True
            return False

        self.loop(lambda: list(backends.values()), on_client, on_backend, finished)

    # SPDY/3.1 (plain, or tunnelled in WebSocket binary messages)
    def run_spdy(self, tunnel):
        codec = SpdyCodec()
        state = {"wsbuf": bytearray(), "spdybuf": bytearray()}
        streams = {}      # sid -> {"type", "port", "rid"}
        requests = {}     # rid -> {"data": sid, "error": sid, "backend": Backend}
        by_sock = {}      # Backend -> rid

        def out(frame):
            if tunnel:
                self.send(wire.ws_frame(wire.OP_BINARY, frame))
            else:
                self.send(frame)

        def end_request(rid, error=None):
            r = requests.get(rid)
            if not r or r.get("ended"):
                return
            r["ended"] = True
            if r.get("error") is not None:
                if error:
                    out(SpdyCodec.data(r["error"], error.encode(), fin=True))
                else:
                    out(SpdyCodec.data(r["error"], b"", fin=True))
            if r.get("data") is not None:
                if error:
                    out(SpdyCodec.rst_stream(r["data"], wire.RST_CANCEL))
                else:
                    out(SpdyCodec.data(r["data"], b"", fin=True))

        def on_frame(control, kind, flags, payload):
            if control:
                if kind == wire.SYN_STREAM:
                    sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
                    hdrs = codec.headers(payload[10:])
                    stype, port, rid = hdrs.get("streamtype"), hdrs.get("port", ""), \
                        hdrs.get("requestid")
                    try:
                        port = int(port)
                    except ValueError:
                        port = 0
                    if stype not in ("data", "error") or not 0 < port < 65536:
                        out(SpdyCodec.rst_stream(sid, wire.RST_PROTOCOL_ERROR))
                        return
                    if rid is None:  # derived as the kubelet does
                        rid = str(sid if stype == "error" else sid - 2)
                    streams[sid] = {"type": stype, "port": port, "rid": rid}
                    r = requests.setdefault(rid, {"port": port})
                    r[stype] = sid
                    out(codec.syn_reply(sid))
                    if stype == "data":
                        b, err = self.dial(port)
                        if b is None:
                            msg = (f"error forwarding port {port} to pod {self.pod}, uid "
                                   f"{self.uid}: {err}")
                            if r.get("error") is None:
                                r["pending_error"] = msg
                            else:
                                end_request(rid, msg)
                        else:
                            r["backend"] = b
                            by_sock[b] = rid
                    elif r.get("pending_error"):
                        end_request(rid, r.pop("pending_error"))
                elif kind == wire.PING:
                    out(SpdyCodec.control(wire.PING, 0, payload[:4]))
                elif kind == wire.RST_STREAM:
                    sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
                    st = streams.get(sid)
                    if st and st["type"] == "data":
                        r = requests.get(st["rid"], {})
                        b = r.get("backend")
                        if b and not b.closed:
                            b.closed = True
                            b.sock.close()
                        if r.get("error") is not None and not r.get("ended"):
                            r["ended"] = True
                            out(SpdyCodec.data(r["error"], b"", fin=True))
                elif kind == wire.GOAWAY:
                    self.done = True
                return  # SETTINGS, WINDOW_UPDATE, HEADERS: ignored (no flow control)
            sid = kind
            st = streams.get(sid)
            if not st or st["type"] != "data":
                return  # the error stream's FIN (the client closes its side at once)
            b = requests.get(st["rid"], {}).get("backend")
            if b is None or b.closed:
                return
            try:
                if payload:
                    b.sock.sendall(payload)
                if flags & wire.FLAG_FIN and not b.wr_closed:
                    b.wr_closed = True
                    b.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        def on_spdy_bytes(data):
            state["spdybuf"] += data
            while True:
                f = SpdyCodec.parse(state["spdybuf"])
                if f is None:
                    return
                control, kind, flags, payload, used = f
                del state["spdybuf"][:used]
                on_frame(control, kind, flags, payload)

        def on_client(data):
            if not tunnel:
                on_spdy_bytes(data)
                return
            state["wsbuf"] += data
            while True:
                f = wire.ws_parse(state["wsbuf"])
                if f is None:
                    return
                fin, op, payload, masked, used = f
                del state["wsbuf"][:used]
                if op == wire.OP_CLOSE:
                    self.send(wire.ws_frame(wire.OP_CLOSE, payload[:2]))
                    self.done = True
                    return
                if op == wire.OP_PING:
                    self.send(wire.ws_frame(wire.OP_PONG, payload))
                elif op in (wire.OP_BINARY, wire.OP_CONT):
                    on_spdy_bytes(payload)

        def on_backend(b, data):
            rid = by_sock.get(b)
            r = requests.get(rid, {})
            if data:
                out(SpdyCodec.data(r["data"], data))
            else:
                b.closed = True
                b.sock.close()
                end_request(rid)

        self.loop(lambda: list(by_sock.keys()), on_client, on_backend, lambda: False)
        try:
            if not tunnel:
                out(SpdyCodec.goaway())
        except OSError:
            pass


# --- main ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="state dir: pki/, kubeconfig-*.yaml, info.json")
    ap.add_argument("--listen", default="127.0.0.1:0", help="ADDR:PORT (default 127.0.0.1:0)")
    ap.add_argument("--agent", default=os.path.join(os.environ.get(
        "PODENV_BUILD", "/work/main/build"), "podenv-agent"), help="podenv-agent binary")
    ap.add_argument("--pod-pid", type=int, help="the mini cluster's pod process: moved into a "
                    "cgroup named after bear-pod's container id while the fake runs")
    ap.add_argument("--pod-ip", default="10.213.0.2")
    ap.add_argument("--pod-ip6", default="fd00:213::2")
    ap.add_argument("--token", help="the bearer token (default: random)")
    ap.add_argument("--token-user", default="podenv-token-user")
    ap.add_argument("--extra-token", action="append", help="TOKEN=USER, more accepted tokens")
    ap.add_argument("--cert-user", default="podenv-cert-user",
                    help="CN of the generated client certificate")
    ap.add_argument("--namespace", action="append", help="another namespace besides default")
    ap.add_argument("--forbid", action="append", help="[USER@]VERB:RESOURCE answered 403, "
                    "e.g. create:jobs, create:pods/portforward, patch:pods/ephemeralcontainers")
    ap.add_argument("--job-failure", choices=JOB_FAILURES)
    ap.add_argument("--set", action="append", help="KEY=JSON, an initial control setting")
    ap.add_argument("--restore-cgroup", action="store_true",
                    help="undo a cgroup move left in --dir by a killed fake, then exit")
    args = ap.parse_args()

    if args.restore_cgroup:
        p = os.path.join(args.dir, "cgroup.json")
        if os.path.exists(p):
            with open(p) as f:
                restore_cgroup(json.load(f))
            os.unlink(p)
        return 0

    fake = Fake(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        fake.setup_pki()
        ids = fake.seed()
        if args.pod_pid:
            fake.cgroup_setup(args.pod_pid, ids)
        host, _, port = args.listen.rpartition(":")
        lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host.strip("[]"), int(port)))
        lsock.listen(64)
        port = lsock.getsockname()[1]
        url = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        server = Server(fake)
        server.ctx = fake.ssl_context()
        kubeconfigs = fake.write_kubeconfigs(url)

        def accept_loop():
            while not stop.is_set():
                try:
                    s, addr = lsock.accept()
                except OSError:
                    return
                # as Go's net/http does: small writes (TLS tickets, a 101
                # head, WebSocket frames) are not held back by Nagle
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=server.serve_conn, args=(s, addr), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        threading.Thread(target=fake.reaper, daemon=True).start()
        info = {"url": url, "port": port, "pid": os.getpid(), "dir": fake.dir,
                "ca": fake.ca[0], "ca_key": fake.ca[1], "token": fake.token,
                "token_user": args.token_user, "token_file": fake.token_file,
                "client_cert": fake.client_cert[0], "client_key": fake.client_cert[1],
                "cert_user": args.cert_user, "kubeconfig": kubeconfigs,
                "container_ids": fake.container_ids, "agent": args.agent, "node": NODE,
                "cgroup": fake.cgroup}
        tmp = os.path.join(fake.dir, "info.json.tmp")
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.rename(tmp, os.path.join(fake.dir, "info.json"))
        print(f"fakeapi: listening on {url}", flush=True)
        stop.wait()
        lsock.close()
    finally:
        fake.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
