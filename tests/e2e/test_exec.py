"""podenv exec / mount against the mini cluster's bear-pod: the routed
filesystem (mirrord's rules), the pod's environment and hostname, exit
status and signals, and nothing left behind."""
import json
import os
import secrets
import signal
import subprocess
import time

import pytest

from conftest import run

PY = "/usr/bin/python3"


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def pexec(cluster, build_dir, *cmd, config=None, flags=(), env=None, timeout=60, cwd="/tmp",
          tmp_path=None):
    args = [podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", *flags]
    if config is not None:
        path = os.path.join(str(tmp_path), f"cfg-{secrets.token_hex(3)}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        args += ["-f", path]
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(args + ["--", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, env=e, cwd=cwd)
    return r


def sh(cluster, build_dir, script, **kw):
    return pexec(cluster, build_dir, "sh", "-c", script, **kw)


@pytest.fixture
def both_sides(cluster):
    """A directory outside mirrord's local list (/srv/podenv-e2e-X) on the
    host AND in the pod, each with a file 'f' saying where it lives."""
    d = "/srv/podenv-e2e-" + secrets.token_hex(3)
    os.makedirs(d)
    with open(d + "/f", "w") as f:
        f.write("host\n")
    pod = cluster.pod_path(d)
    os.makedirs(pod)
    with open(pod + "/f", "w") as f:
        f.write("pod\n")
    yield d
    subprocess.run(["rm", "-rf", d, pod])


def test_default_rules(cluster, build_dir):
    r = sh(cluster, build_dir, "cat /app/config.yaml; cat /etc/hostname; hostname; "
           "cat /etc/os-release; cat /etc/resolv.conf")
    assert r.returncode == 0, r.stderr
    assert cluster.fixtures["config_text"] in r.stdout  # remote (read mode)
    assert r.stdout.count("bear-pod\n") == 2  # /etc/hostname remote, UTS hostname
    assert "Bear OS" not in r.stdout  # /etc/os-release is local by default
    with open("/etc/os-release") as f:
        assert f.read() in r.stdout
    assert "search default.svc.cluster.local" in r.stdout  # resolv.conf remote


def test_read_only_pattern_makes_os_release_remote(cluster, build_dir, tmp_path):
    cfg = {"feature": {"fs": {"mode": "read", "read_only": ["^/etc/os-release$"]}}}
    r = sh(cluster, build_dir, "cat /etc/os-release", config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'NAME="Bear OS"' in r.stdout


def test_python_and_static_busybox(cluster, build_dir):
    r = pexec(cluster, build_dir, PY, "-c", "import json,ssl,sqlite3; print('ok')")
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    r = pexec(cluster, build_dir, "/bin/busybox", "ls", "/app")
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) >= {"config.yaml", "tree", "secret.txt", "rootlink"}


def test_write_mode_writes_land_in_the_pod(cluster, build_dir, both_sides):
    d = both_sides
    r = sh(cluster, build_dir, f"echo new > {d}/g; cat {d}/g; mkdir {d}/sub; "
           f"mv {d}/g {d}/sub/h; ls {d}/sub", flags=["--fs-mode", "write"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "new\nh\n"
    with open(cluster.pod_path(d + "/sub/h")) as f:
        assert f.read() == "new\n"
    assert not os.path.exists(d + "/sub")


def test_read_mode_reads_remote_writes_local(cluster, build_dir, both_sides):
    d = both_sides
    r = sh(cluster, build_dir, f"cat {d}/f; echo mine > {d}/w")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pod\n"
    with open(d + "/w") as f:
        assert f.read() == "mine\n"  # the write went to the local file
    assert not os.path.exists(cluster.pod_path(d + "/w"))


def test_user_lists(cluster, build_dir, both_sides, tmp_path):
    d = both_sides
    cfg = {"feature": {"fs": {"mode": "write", "local": [f"^{d}/f$"],
                              "not_found": ["^/app/secret"]}}}
    r = sh(cluster, build_dir, f"cat {d}/f; cat /app/secret.txt", config=cfg, tmp_path=tmp_path)
    assert r.stdout == "host\n"
    assert "No such file" in r.stderr
    # read_only: reads remote, and an open for writing goes local even in write mode
    cfg = {"feature": {"fs": {"mode": "write", "read_only": [f"^{d}"]}}}
    r = sh(cluster, build_dir, f"cat {d}/f; echo x > {d}/f2", config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pod\n"
    assert os.path.exists(d + "/f2") and not os.path.exists(cluster.pod_path(d + "/f2"))


def test_mapping_with_named_groups(cluster, build_dir, tmp_path):
    cfg = {"feature": {"fs": {"mapping": {"^/app/(?<name>[a-z]+)\\.conf$": "/app/${name}.yaml"}}}}
    r = sh(cluster, build_dir, "cat /app/config.conf", config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert cluster.fixtures["config_text"] in r.stdout


def test_not_found_default_under_home(cluster, build_dir, tmp_path):
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text("secret kubeconfig\n")
    r = sh(cluster, build_dir, "ls -d $HOME; cat $HOME/.kube/config", env={"HOME": str(home)},
           cwd=str(tmp_path))
    assert str(home) in r.stdout
    assert "secret kubeconfig" not in r.stdout
    assert "No such file" in r.stderr


def test_merged_listings(cluster, build_dir):
    r = sh(cluster, build_dir, "ls /; echo --; ls /etc")
    top, etc = r.stdout.split("--\n")
    top = set(top.split())
    assert {"app", "data"} <= top  # remote-only directories
    assert {"usr", "proc", "tmp"} <= top  # local
    etc = set(etc.split())
    assert "hostname" in etc and "resolv.conf" in etc
    assert "os-release" in etc  # from the host
    # a local-only entry that routes remote does not show: the host's /srv
    # dirs route to the pod, where they are absent
    os.makedirs("/srv/podenv-hidden", exist_ok=True)
    try:
        r = sh(cluster, build_dir, "ls /srv 2>/dev/null; true")
        assert "podenv-hidden" not in r.stdout
    finally:
        os.rmdir("/srv/podenv-hidden")


def test_raw_pod_root(cluster, build_dir):
    r = sh(cluster, build_dir, "cat $PODENV_ROOT/etc/os-release; ls $PODENV_ROOT/app; "
           "echo x > $PODENV_ROOT/app/nope")
    assert 'NAME="Bear OS"' in r.stdout
    assert "config.yaml" in r.stdout
    assert "Read-only file system" in r.stderr


def test_env_rules(cluster, build_dir, tmp_path):
    r = sh(cluster, build_dir, "echo $DATABASE_USER $PUBLIC_ENV $PATH $HOME $PODENV_TARGET")
    user, public, path, home, target = r.stdout.split()
    assert (user, public) == ("bear", "public-value")
    assert path == os.environ["PATH"]  # default excludes keep the local PATH and HOME
    assert home == os.environ["HOME"]
    assert target == f"pid/{cluster.pod_pid}"
    cfg = {"feature": {"env": {"include": ["DATABASE_*", "MY_APP_?OLOR"],
                               "override": {"EXTRA": "1"}, "unset": ["database_password"]}}}
    r = sh(cluster, build_dir, "env", config=cfg, tmp_path=tmp_path)
    env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    assert env["DATABASE_USER"] == "bear" and env["MY_APP_COLOR"] == "brown"
    assert "DATABASE_PASSWORD" not in env and "PUBLIC_ENV" not in env
    assert env["EXTRA"] == "1"
    cfg = {"feature": {"env": {"exclude": ["DATABASE_PASSWORD"]}}}
    r = sh(cluster, build_dir, "env", config=cfg, tmp_path=tmp_path)
    assert "DATABASE_USER=bear" in r.stdout and "DATABASE_PASSWORD" not in r.stdout


def test_exit_status(cluster, build_dir):
    assert sh(cluster, build_dir, "true").returncode == 0
    assert sh(cluster, build_dir, "exit 3").returncode == 3
    assert sh(cluster, build_dir, "kill -9 $$").returncode == 128 + 9
    r = pexec(cluster, build_dir, "/nonexistent/cmd")
    assert r.returncode == 127 and "cannot run /nonexistent/cmd" in r.stderr


def test_signals_are_forwarded(cluster, build_dir):
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "--", "sh",
                          "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                          "while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 42, err
    assert "got-term" in out


def podenv_mounts():
    with open("/proc/self/mountinfo") as f:
        return {l for l in f if "fuse.podenv" in l or " /tmp/podenv-" in l}


def test_no_leftovers(cluster, build_dir):
    # Compared with before the run: other podenv sessions (benchmarks, a
    # developer's shell) may be running on this machine.
    before, mounts = set(os.listdir("/tmp")), podenv_mounts()
    assert sh(cluster, build_dir, "ls /app >/dev/null").returncode == 0
    assert podenv_mounts() <= mounts
    leftovers = {x for x in set(os.listdir("/tmp")) - before if x.startswith("podenv-")}
    assert not leftovers
    out = run(["pgrep", "-f", f"podenv-agent --pid {cluster.pod_pid}"]).stdout.split()
    assert out == []


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.timeout(180)
def test_10000_file_ops_leak_no_fds(cluster, build_dir):
    script = (
        "import os, sys, time\n"
        "def work(n):\n"
        "    for i in range(n):\n"
        "        with open('/app/config.yaml') as f: f.read()\n"
        "        os.stat('/data/big.bin'); os.listdir('/app/tree/d01')\n"
        "        try: open('/app/nope')\n"
        "        except FileNotFoundError: pass\n"
        "work(100); print('warm', flush=True); time.sleep(1.5)\n"
        "work(2500); print('done', flush=True); time.sleep(1.5)\n")
    p = subprocess.Popen([podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}", "--", PY,
                          "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/tmp")
    try:
        assert p.stdout.readline() == "warm\n"
        agent = int(run(["pgrep", "-P", str(p.pid), "-f", "podenv-agent"]).stdout.split()[0])
        before = (fd_count(p.pid), fd_count(agent))
        assert p.stdout.readline() == "done\n"
        after = (fd_count(p.pid), fd_count(agent))
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert after == before


def test_mount_raw_pod_root(cluster, build_dir, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.Popen([podenv(build_dir), "mount", f"pid/{cluster.pod_pid}", str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if os.path.exists(mnt / "app"):
                break
            time.sleep(0.05)
        assert (mnt / "app" / "config.yaml").read_text() == cluster.fixtures["config_text"]
        assert "Bear OS" in (mnt / "etc" / "os-release").read_text()
        with pytest.raises(OSError):
            (mnt / "app" / "x").write_text("no")  # read-only by default
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, p.stderr.read()
    assert not os.path.exists(mnt / "app")
    # fusermount3 -u from outside ends it as well
    p = subprocess.Popen([podenv(build_dir), "mount", f"pid/{cluster.pod_pid}", str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if os.path.exists(mnt / "app"):
            break
        time.sleep(0.05)
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    assert p.wait(timeout=10) == 0


def test_skip_processes_are_served_locally(cluster, build_dir, tmp_path):
    cfg = {"skip_processes": ["cat"]}
    # cat is skipped: it reads the host's /etc/hostname; the shell's own
    # read of the same file goes to the pod.
    r = sh(cluster, build_dir, "cat /etc/hostname; read x < /etc/hostname; echo $x",
           config=cfg, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    with open("/etc/hostname") as f:
        host = f.read().strip()
    assert r.stdout.splitlines() == [host, "bear-pod"]


def tmux(*args, check=True):
    return run(["tmux", *args], check=check, timeout=30)


def screen(session):
    return tmux("capture-pane", "-p", "-t", session).stdout


def wait_for(session, text, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = screen(session)
        if text in s:
            return s
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{screen(session)}")


def test_shell_under_tmux(cluster, build_dir, tmp_path):
    """podenv shell as a user meets it: a terminal, a prompt, typed commands."""
    session = "podenv-e2e-" + secrets.token_hex(3)
    env_file = tmp_path / "home"
    env_file.mkdir()
    cmd = (f"cd /tmp && HOME={env_file} SHELL=/bin/bash {podenv(build_dir)} shell "
           f"-t pid/{cluster.pod_pid}; echo podenv-exit=$?; sleep 30")
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        s = wait_for(session, f"(podenv:pid/{cluster.pod_pid})")
        assert f"podenv: shell in pid/{cluster.pod_pid} (hostname bear-pod)" in s
        tmux("send-keys", "-t", session, "echo user=$DATABASE_USER host=$(hostname)", "Enter")
        wait_for(session, "user=bear host=bear-pod")
        tmux("send-keys", "-t", session, "head -2 /app/config.yaml", "Enter")
        wait_for(session, "name: bear-app" if False else "bear-pod application config")
        # job control: a background job and fg
        tmux("send-keys", "-t", session, "sleep 30 &", "Enter")
        tmux("send-keys", "-t", session, "jobs", "Enter")
        wait_for(session, "Running")
        tmux("send-keys", "-t", session, "kill %1; exit 7", "Enter")
        wait_for(session, "podenv-exit=7")
    finally:
        tmux("kill-session", "-t", session, check=False)


def test_mount_with_a_stuck_agent_ends_cleanly(cluster, build_dir, tmp_path):
    """A read waiting on a stopped agent: SIGTERM to podenv mount answers it
    (EIO) before the mount goes, and nothing is left behind."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.Popen([podenv(build_dir), "mount", f"pid/{cluster.pod_pid}", str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = None
    try:
        for _ in range(100):
            if os.path.exists(mnt / "app"):
                break
            time.sleep(0.05)
        agent = int(run(["pgrep", "-P", str(p.pid), "-f", "podenv-agent"]).stdout.split()[0])
        os.kill(agent, signal.SIGSTOP)
        reader = subprocess.Popen(["cat", str(mnt / "data" / "big.bin")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert reader.poll() is None  # waiting on the agent
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        reader.wait(timeout=20)
        assert reader.returncode != 0
        assert "fuse: writing device" not in err, err
    finally:
        if agent:
            try:
                os.kill(agent, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            p.kill()
            p.wait()
    assert podenv_mounts_under(str(mnt)) == []


def podenv_mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if f" {path} " in l]


def test_mount_ends_when_the_agent_dies_with_reads_pending(cluster, build_dir, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.Popen([podenv(build_dir), "mount", f"pid/{cluster.pod_pid}", str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if os.path.exists(mnt / "app"):
                break
            time.sleep(0.05)
        agent = int(run(["pgrep", "-P", str(p.pid), "-f", "podenv-agent"]).stdout.split()[0])
        os.kill(agent, signal.SIGSTOP)
        reader = subprocess.Popen(["cat", str(mnt / "data" / "big.bin")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        os.kill(agent, signal.SIGKILL)
        out, err = p.communicate(timeout=20)
        reader.wait(timeout=20)  # answered (EIO), not hanging
        assert reader.returncode != 0
        assert p.returncode == 1 and "lost the agent" in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert podenv_mounts_under(str(mnt)) == []
