"""podenv exec without root: through a user namespace, when the user may
use /dev/fuse. The target is the user's own "rootless container": a process
chrooted (in its own user namespace) into a small root filesystem."""
import os
import pwd
import shutil
import subprocess
import sys
import time

import pytest

from conftest import run

USER = "podenv-e2e"


@pytest.fixture(scope="module")
def test_user():
    if os.geteuid() != 0:
        pytest.skip("creating a test user needs root")
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        created = True
    # The devices are opened to the test user, as the issue asks; restored after.
    modes = {d: os.stat(d).st_mode & 0o7777 for d in ("/dev/fuse", "/dev/net/tun")}
    for d in modes:
        os.chmod(d, 0o666)
    try:
        yield pwd.getpwnam(USER)
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)
        if created:
            run(["userdel", "--remove", USER])


def as_user(user, cmd, timeout=60):
    return run(["su", user.pw_name, "-s", "/bin/sh", "-c", cmd], timeout=timeout)


@pytest.fixture
def user_pod(test_user):
    """A process of the test user whose root is a busybox tree of its own."""
    import pathlib
    import tempfile
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="podenv-userpod-"))
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "app").mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    (root / "app" / "config.yaml").write_text("owner: the user's own pod\n")
    os.chmod(tmp_path, 0o755)
    subprocess.run(["chown", "-R", f"{test_user.pw_uid}:{test_user.pw_gid}", str(root)],
                   check=True)
    p = subprocess.Popen(["su", USER, "-s", "/bin/sh", "-c",
                          f"exec unshare -Ur chroot {root} /bin/busybox sleep 300"])
    # the chrooted sleep is a child of su: find it
    pid = None
    for _ in range(100):
        for cand in run(["pgrep", "-u", USER, "-f", "busybox sleep 300"]).stdout.split():
            try:
                if os.readlink(f"/proc/{cand}/root") == str(root):
                    pid = int(cand)
            except OSError:
                pass
        if pid:
            break
        time.sleep(0.05)
    try:
        assert pid, "the user's pod did not start"
        yield pid
    finally:
        run(["pkill", "-u", USER, "-f", "busybox sleep 300"])
        p.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_exec_without_root(test_user, user_pod, build_dir):
    podenv = os.path.join(build_dir, "podenv")
    r = as_user(test_user, f"cd /tmp && {podenv} exec -t pid/{user_pod} -- "
                "sh -c 'cat /app/config.yaml; id -u; cat /etc/os-release | head -1'")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "owner: the user's own pod"  # the target's file, via the agent
    assert lines[1] == str(test_user.pw_uid)  # still the user, not root
    assert lines[2].startswith("PRETTY_NAME") or lines[2].startswith("NAME")  # host's, local


def test_without_fuse_access_the_error_says_why(test_user, user_pod, build_dir):
    os.chmod("/dev/fuse", 0o600)
    try:
        podenv = os.path.join(build_dir, "podenv")
        r = as_user(test_user, f"cd /tmp && {podenv} exec -t pid/{user_pod} -- true")
    finally:
        os.chmod("/dev/fuse", 0o666)
    assert r.returncode == 1
    assert "cannot use /dev/fuse" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one clear line


def test_without_tun_access_the_error_says_why(test_user, user_pod, build_dir):
    os.chmod("/dev/net/tun", 0o600)
    try:
        podenv = os.path.join(build_dir, "podenv")
        r = as_user(test_user, f"cd /tmp && {podenv} exec -t pid/{user_pod} -- true")
    finally:
        os.chmod("/dev/net/tun", 0o666)
    assert r.returncode == 1
    assert "cannot use /dev/net/tun" in r.stderr, r.stderr


def test_unix_streams_without_root(test_user, user_pod, build_dir):
    """The connect() watch (seccomp, no_new_privs) and the agent's connect
    in the target's root work as an ordinary user too."""
    sock = f"/proc/{user_pod}/root/bear.sock"
    server = subprocess.Popen(
        ["su", USER, "-s", "/bin/sh", "-c",
         f"exec {sys.executable} -c \"import socket; s=socket.socket(socket.AF_UNIX); "
         f"s.bind('{sock}'); s.listen(1); print('ready', flush=True); c,_=s.accept(); "
         "c.sendall(b'user-pod:'+c.recv(10))\""], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        import tempfile
        with tempfile.NamedTemporaryFile("w", dir="/tmp", suffix=".json", delete=False) as f:
            f.write('{"feature": {"network": {"outgoing": {"unix_streams": "^/bear"}}}}')
            cfg = f.name
        os.chmod(cfg, 0o644)
        podenv = os.path.join(build_dir, "podenv")
        r = as_user(test_user, f"cd /tmp && {podenv} exec -f {cfg} -t pid/{user_pod} -- "
                    f"{sys.executable} -c \"import socket; s=socket.socket(socket.AF_UNIX); "
                    "s.connect('/bear.sock'); s.sendall(b'hi'); print(s.recv(20).decode())\"")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "user-pod:hi"
    finally:
        # su does not pass SIGKILL on: the server is the user's process
        run(["pkill", "-u", USER, "-f", f"s.bind\\('{sock}'\\)"])
        server.kill()
        server.wait()
        if "cfg" in locals():
            os.unlink(cfg)
