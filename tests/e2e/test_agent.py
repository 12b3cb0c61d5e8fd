"""podenv-agent against the mini cluster's bear-pod: target lookup and what
the agent sees of its target."""
import os
import secrets
import subprocess
import time

import pytest

from conftest import run


def agent(build_dir):
    return os.path.join(build_dir, "podenv-agent")


def test_inspect_shows_the_pods_context(cluster, build_dir):
    r = run([agent(build_dir), "--pid", str(cluster.pod_pid), "--inspect"], check=True)
    lines = r.stdout.splitlines()
    assert f"target: pid {cluster.pod_pid}" in lines
    assert "hostname: bear-pod" in lines
    assert 'os-release: "Bear OS' in r.stdout
    with open("/etc/os-release") as f:
        assert "Bear OS" not in f.read()  # the host's is different
    for name, value in cluster.pod["env"].items():
        assert f"  {name}={value}" in lines


def test_inspect_errors_are_one_clear_line(build_dir):
    r = run([agent(build_dir), "--pid", "999999999", "--inspect"])
    assert r.returncode == 1
    assert "target process 999999999" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run([agent(build_dir), "--inspect"])
    assert r.returncode == 2
    assert "give exactly one of --pid and --container-id" in r.stderr
    r = run([agent(build_dir), "--pid", "1", "--listen", "127.0.0.1:0"])
    assert r.returncode == 2 and "--token-file" in r.stderr
    r = run([agent(build_dir), "--pid", "x1", "--inspect"])
    assert r.returncode == 2 and "'x1' is not a number" in r.stderr


def cgroup_root():
    """A cgroup hierarchy we can create groups in (v2, else v1 pids)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.procs"):
        return "/sys/fs/cgroup"
    if os.path.isdir("/sys/fs/cgroup/pids"):
        return "/sys/fs/cgroup/pids"
    pytest.skip("no writable cgroup hierarchy")


@pytest.fixture
def container_process():
    """A process in a cgroup named like a containerd container, as a
    Kubernetes node would have it; removed afterwards."""
    cid = secrets.token_hex(32)
    group = os.path.join(cgroup_root(), f"podenv-test-cri-containerd-{cid}.scope")
    os.mkdir(group)
    proc = subprocess.Popen(["sleep", "300"])
    try:
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        yield cid, proc.pid
    finally:
        proc.kill()
        proc.wait()
        for _ in range(50):
            try:
                os.rmdir(group)
                break
            except OSError:
                time.sleep(0.05)


def test_container_id_finds_the_process(container_process, build_dir):
    cid, pid = container_process
    for ident in (cid, cid[:12], "containerd://" + cid):
        r = run([agent(build_dir), "--container-id", ident, "--inspect"], check=True)
        assert r.stdout.splitlines()[0] == f"target: pid {pid}", ident


def test_container_id_errors(build_dir):
    r = run([agent(build_dir), "--container-id", "0" * 64, "--inspect"])
    assert r.returncode == 1
    assert "no process of container" in r.stderr
    r = run([agent(build_dir), "--container-id", "not-hex-at-all", "--inspect"])
    assert r.returncode == 1 and "hex" in r.stderr
