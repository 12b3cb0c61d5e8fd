"""podenv doctor: passes on this machine as root; with a requirement taken
away (a user without access to /dev/fuse) it says which and how to fix it,
and exits non-zero."""
import os
import secrets
import stat
import subprocess

import pytest

CHECKS = ["kernel", "FUSE", "/dev/fuse access", "fusermount3", "TUN", "/dev/net/tun access",
          "user namespaces", "seccomp user notification", "openat2", "podenv-agent"]


def doctor(build_dir, *args, pre=(), env=None):
    e = {k: v for k, v in os.environ.items() if k != "MIRRORD_CONFIG_FILE"}
    e.update(env or {})
    return subprocess.run([*pre, os.path.join(build_dir, "podenv"), "doctor", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                          env=e, cwd="/tmp")


def checks(out):
    """{label: (ok, line)} for the check lines."""
    res = {}
    for line in out.splitlines():
        if line[:2] in ("\u2713 ", "\u2717 "):
            res[line[2:].split(": ", 1)[0]] = (line[0] == "\u2713", line)
    return res


def test_doctor_passes_as_root(build_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = doctor(build_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    c = checks(r.stdout)
    assert list(c) == CHECKS, r.stdout
    for label in CHECKS:
        assert c[label][0], c[label][1]
    assert r.stdout.splitlines()[-1] == "podenv doctor: everything podenv needs is here"
    assert "podenv-agent 0.1.0" in c["podenv-agent"][1]


def test_doctor_target(cluster, build_dir):
    r = doctor(build_dir, "-t", f"pid/{cluster.pod_pid}")
    assert r.returncode == 0, r.stdout + r.stderr
    label = f"target pid/{cluster.pod_pid}"
    c = checks(r.stdout)
    assert c[label][0], r.stdout
    r = doctor(build_dir, "-t", "pid/999999999")
    assert r.returncode == 1
    ok, line = checks(r.stdout)["target pid/999999999"]
    assert not ok and "no process 999999999" in line and "fix:" in line


def test_doctor_agent_missing(build_dir):
    r = doctor(build_dir, env={"PODENV_AGENT": "/nonexistent/podenv-agent"})
    assert r.returncode == 1
    ok, line = checks(r.stdout)["podenv-agent"]
    assert not ok and "not found" in line and "PODENV_AGENT" in line
    assert r.stdout.splitlines()[-1] == "podenv doctor: 1 required check failed"


@pytest.fixture
def throwaway_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user")
    name = "pdoc" + secrets.token_hex(3)
    subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", name], check=True,
                   timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-f", name], timeout=30)


def test_doctor_without_dev_fuse_access(build_dir, throwaway_user):
    st = os.stat("/dev/fuse")
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH):
        pytest.skip("/dev/fuse is usable by everyone here")
    pre = ["setpriv", "--reuid", throwaway_user, "--regid", throwaway_user, "--clear-groups",
           "--"]
    r = doctor(build_dir, pre=pre, env={"HOME": "/tmp"})
    assert r.returncode == 1, r.stdout + r.stderr
    c = checks(r.stdout)
    ok, line = c["/dev/fuse access"]
    assert not ok, line
    assert "not readable and writable by uid" in line
    assert "fix: give this user read-write access to /dev/fuse" in line
    # the rest is still checked and reported
    assert c["kernel"][0] and c["openat2"][0] and c["podenv-agent"][0], r.stdout
    assert "required check" in r.stdout.splitlines()[-1]
