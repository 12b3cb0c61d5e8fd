"""Messages (issue 9, item 7): every error is one line that says what failed
and what to do; -q leaves only errors, -v adds the launcher's and the local
agent's debug logs. The target is a process of this test (pid/PID): no
cluster needed."""
import os
import subprocess

import pytest

from conftest import run


@pytest.fixture
def target():
    p = subprocess.Popen(["sleep", "60"])
    yield f"pid/{p.pid}"
    p.kill()
    p.wait()


def gone_pid():
    """A pid that no process has (pid_max is at most 4194304)."""
    pid = 4194303
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def podenv(build_dir, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("MIRRORD_CONFIG_FILE", "RUST_LOG")}
    return run([os.path.join(build_dir, "podenv"), *args], timeout=60, env=env)


BAD = [
    # (arguments, what the one line must say, exit status)
    (["bogus"], "unknown command 'bogus'", 2),
    (["exec"], "no command given", 2),
    (["exec", "--bogus", "-t", "pid/1", "--", "true"], "unknown option --bogus", 2),
    (["explain", "--bogus", "/etc/hosts"], "unknown option --bogus", 2),
    (["exec", "-t"], "--target: expected TARGET", 2),
    (["exec", "-t", "bogus/x", "--", "true"], 'got "bogus/x"', 2),
    (["exec", "-f", "/nonexistent.json", "-t", "pid/1", "--", "true"],
     "/nonexistent.json: cannot open the configuration file", 2),
    (["exec", "--fs-mode", "bogus", "-t", "pid/1", "--", "true"], "feature.fs.mode", 2),
    (["exec", "-t", "pid/GONE", "--", "true"], "target pid/GONE: no such process", 1),
    (["shell", "-t", "pid/GONE"], "target pid/GONE: no such process", 1),
    (["debug", "agent", "-t", "pid/GONE", "hostname"], "target pid/GONE: no such process", 1),
    (["mount", "pid/1", "/nonexistent-dir"], "/nonexistent-dir: No such file or directory", 2),
    (["config", "bogus"], 'unknown subcommand "bogus"', 2),
    (["explain"], "nothing to explain", 2),
    (["help", "bogus"], "unknown command 'bogus'", 2),
]


@pytest.mark.parametrize("args,says,status", BAD, ids=[" ".join(b[0]) for b in BAD])
@pytest.mark.parametrize("quiet", [False, True], ids=["", "-q"])
def test_errors_are_one_line(build_dir, args, says, status, quiet):
    gone = str(gone_pid())
    args = [a.replace("GONE", gone) for a in args]
    r = podenv(build_dir, *(["-q"] if quiet else []), *args)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("podenv: "), lines[0]
    assert says.replace("GONE", gone) in lines[0], lines[0]
    assert r.returncode == status, r.stderr


def test_quiet_and_verbose(build_dir, target):
    r = podenv(build_dir, "-q", "exec", "-t", target, "--", "true")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = podenv(build_dir, "exec", "-t", target, "--", "true")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = podenv(build_dir, "-v", "exec", "-t", target, "--", "true")
    assert r.returncode == 0, r.stderr
    debug = [line for line in r.stderr.splitlines() if " DEBUG " in line]
    assert any("podenv::link" in line for line in debug), r.stderr  # the launcher's
    assert any("podenv::agent" in line for line in debug), r.stderr  # the local agent's
