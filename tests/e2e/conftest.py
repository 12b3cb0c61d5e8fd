"""Shared fixtures of the end-to-end suite (tests/cluster/README.md).

Fixtures:
  build_dir   the build folder (env PODENV_BUILD, default /work/main/build)
  cluster     session-scoped: `tests/cluster/cluster up` once, `down` at the
              end even when tests fail; a Cluster object (below). Its
              instance is PODENV_CLUSTER_ID or "s<pytest pid>", so sessions
              running side by side each have their own cluster.

Every test gets a timeout (default 120 s; `@pytest.mark.timeout(N)` changes
it) unless the pytest-timeout plugin is there to do it.
"""
import atexit
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "tests" / "cluster" / "cluster"
PYTHON = "/usr/bin/python3"
DEFAULT_TIMEOUT = 120


def build_dir_path():
    return os.path.abspath(os.environ.get("PODENV_BUILD", "/work/main/build"))


def run(cmd, timeout=30, check=False, input=None, env=None, text=True):
    """Run a command, capture stdout and stderr, never hang past timeout."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, input=input,
                       timeout=timeout, env=env, text=text)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def skip_if_sanitized(build):
    """The agent image carries a static agent, which a sanitizer build
    (make asan's objects, ASan runtime) cannot link."""
    r = run(["ldd", os.path.join(build, "podenv-agent")])
    if "libasan" in r.stdout or "libubsan" in r.stdout:
        pytest.skip("a sanitizer build cannot link the static agent of the image")


def cluster_cmd(*args, instance=None, timeout=300, check=False):
    """Run tests/cluster/cluster; instance names a separate cluster (PODENV_CLUSTER_ID)."""
    env = dict(os.environ)
    env["PODENV_BUILD"] = build_dir_path()
    env["PODENV_CLUSTER_OWNER"] = str(os.getpid())
    if instance is not None:
        env["PODENV_CLUSTER_ID"] = instance
    return run([PYTHON, str(CLUSTER_SCRIPT), *args], timeout=timeout, check=check, env=env)


class Cluster:
    """A running mini cluster, as `cluster status` describes it.

    status      the whole status JSON (dict)
    pod_pid     the pod's long-running process (its environ, root, net/mnt/uts)
    pod_ip, pod_ip6, client_ip, client_ip6, dns_ip, dns_ip6
    netns(role) the `ip netns` name of "pod", "services", "client" or "net"
    """

    def __init__(self, status, instance=None):
        self.instance = instance
        self.status = status
        self.pod = status["pod"]
        self.pod_pid = status["pod"]["pid"]
        self.pod_ip, self.pod_ip6 = status["pod"]["ipv4"], status["pod"]["ipv6"]
        self.client_ip, self.client_ip6 = status["client"]["ipv4"], status["client"]["ipv6"]
        self.dns_ip, self.dns_ip6 = status["dns"]["server"], status["dns"]["server6"]
        self.services = status["services"]
        self.fixtures = status["fixtures"]

    def netns(self, role):
        return self.status["namespaces"][role]

    def netns_path(self, role):
        return self.status["netns_paths"][role]

    def pod_path(self, path):
        """A path inside the pod's root, readable from the host."""
        return f"/proc/{self.pod_pid}/root/{path.lstrip('/')}"

    def in_pod(self, *cmd, timeout=30, check=False, input=None, uid=None):
        """Run cmd in every namespace and the root of the pod (busybox there)."""
        pre = ["nsenter", "-t", str(self.pod_pid), "-a"]
        if uid is not None:
            pre += ["-S", str(uid), "-G", str(uid)]
        return run(pre + ["--", *cmd], timeout=timeout, check=check, input=input)

    def in_netns(self, role, *cmd, timeout=30, check=False, input=None):
        """Run a host program inside one of the cluster's network namespaces."""
        return run(["nsenter", "--net=" + self.netns_path(role), "--", *cmd], timeout=timeout,
                   check=check, input=input)

    def python_in_netns(self, role, code, *args, timeout=30, check=True):
        """Run Python code in a network namespace; returns its parsed JSON stdout."""
        r = self.in_netns(role, PYTHON, "-c", code, *args, timeout=timeout, check=check)
        return json.loads(r.stdout) if check else r

    def refresh(self):
        r = cluster_cmd("status", instance=self.instance, timeout=30, check=True)
        self.__init__(json.loads(r.stdout), self.instance)
        return self


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): fail the test after this long")


@pytest.fixture(autouse=True)
def _test_timeout(request):
    if request.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    m = request.node.get_closest_marker("timeout")
    seconds = int(m.args[0]) if m and m.args else DEFAULT_TIMEOUT

    def expired(signum, frame):
        raise TimeoutError(f"test timed out after {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def build_dir():
    return build_dir_path()


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the mini cluster needs root")
    # Each session gets its own instance (namespaces, state dir), so test
    # sessions running at the same time do not take each other's cluster down.
    instance = os.environ.get("PODENV_CLUSTER_ID") or f"s{os.getpid()}"
    cluster_cmd("reap", timeout=120)  # instances left by killed sessions
    done = []

    def down():
        if not done:
            done.append(1)
            cluster_cmd("down", instance=instance, timeout=60)

    atexit.register(down)  # a crashed or interrupted session still cleans up
    r = cluster_cmd("up", instance=instance, timeout=600)
    if r.returncode != 0:
        down()
        pytest.fail(f"cluster up failed ({r.returncode}):\n{r.stderr}\n{r.stdout}")
    try:
        yield Cluster(json.loads(r.stdout), instance)
    finally:
        down()
