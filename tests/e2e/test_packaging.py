"""Packaging (issue 9): completions, man pages, `make install`, the agent image.

All of them use the build folder under test (PODENV_BUILD) as the Makefile's
O=, so they build nothing new there beyond the man pages and the schema.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from conftest import ROOT, run, skip_if_sanitized
from test_completion import subcommands  # the commands `podenv --help` lists

BASH_COMPLETION = ROOT / "packaging" / "completions" / "podenv.bash"


def complete(*words):
    """COMPREPLY of the bash completion for `words`, the last one being completed."""
    script = (f"source {BASH_COMPLETION}\n"
              "[[ $(complete -p podenv) == *'-F _podenv'* ]] || exit 3\n"
              f"COMP_WORDS=({' '.join(map(repr, words))}); COMP_CWORD={len(words) - 1}\n"
              "_podenv\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = run(["bash", "--norc", "-c", script], check=True)
    return [w for w in r.stdout.split("\n") if w]


def test_bash_completes_subcommands():
    assert sorted(complete("podenv", "ex")) == ["exec", "explain"]
    assert sorted(complete("podenv", "")) == subcommands()
    assert complete("podenv", "help", "sh") == ["shell"]


def test_bash_completes_pid_targets():
    got = complete("podenv", "exec", "-t", "pid/1")
    assert "pid/1" in got
    assert all(w.startswith("pid/1") for w in got)
    mine = f"pid/{os.getpid()}"
    assert mine in complete("podenv", "exec", "-t", "pid/")
    assert "pid/" in complete("podenv", "shell", "--target", "p")


def make(build_dir, *args, timeout=300):
    return run(["make", "--no-print-directory", "-C", str(ROOT), f"O={build_dir}", *args],
               timeout=timeout, check=True)


INSTALLED = [
    "bin/podenv",
    "bin/podenv-agent",
    "share/man/man1/podenv.1",
    "share/man/man5/podenv-config.5",
    "share/man/man8/podenv-agent.8",
    "share/podenv/mirrord-config.schema.json",
    "share/bash-completion/completions/podenv",
    "share/zsh/vendor-completions/_podenv",
    "share/fish/vendor_completions.d/podenv.fish",
]


@pytest.mark.timeout(300)
def test_make_install_and_uninstall(build_dir):
    with tempfile.TemporaryDirectory(prefix="podenv-install.") as dest:
        make(build_dir, "install", "PREFIX=/usr/local", f"DESTDIR={dest}")
        root = os.path.join(dest, "usr/local")
        files = sorted(os.path.relpath(os.path.join(d, f), root)
                       for d, _, fs in os.walk(root) for f in fs)
        assert files == sorted(INSTALLED)
        r = run([os.path.join(root, "bin/podenv"), "--version"], check=True)
        assert r.stdout.startswith("podenv ")
        schema = json.load(open(os.path.join(root, "share/podenv/mirrord-config.schema.json")))
        assert "feature" in schema["properties"]
        make(build_dir, "uninstall", "PREFIX=/usr/local", f"DESTDIR={dest}")
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        assert left == []


@pytest.mark.parametrize("page", ["podenv.1", "podenv-agent.8", "podenv-config.5"])
def test_man_pages_render(build_dir, page):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    make(build_dir, "man")
    path = os.path.join(build_dir, "share/man", page)
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    r = run(["man", "--warnings", "-l", path], env=env, check=True)
    text = re.sub(".\b", "", r.stdout)  # overstrike bold/underline
    assert "NAME" in text and "SEE ALSO" in text
    assert r.stderr == "", r.stderr


def test_config_man_page_lists_every_schema_field(build_dir):
    """podenv-config(5) and the schema come from one table: every field is in the page."""
    make(build_dir, "man")
    schema = json.load(open(os.path.join(build_dir, "share/mirrord-config.schema.json")))
    page = open(os.path.join(build_dir, "share/man/podenv-config.5")).read().replace("\\-", "-")
    missing = []

    def walk(node, prefix):
        alts = [node] + node.get("anyOf", [])
        for alt in alts:
            for name, sub in alt.get("properties", {}).items():
                if f".B {prefix}{name}\n" not in page:
                    missing.append(prefix + name)
                walk(sub, f"{prefix}{name}.")

    walk(schema, "")
    assert missing == []


def unpack_oci(archive, dest):
    """Unpack an OCI archive's (only) image into dest/rootfs; returns its config."""
    with tarfile.open(archive) as t:
        t.extractall(os.path.join(dest, "layout"))
    layout = os.path.join(dest, "layout")
    assert json.load(open(os.path.join(layout, "oci-layout")))["imageLayoutVersion"] == "1.0.0"

    def blob(desc):
        algo, digest = desc["digest"].split(":")
        path = os.path.join(layout, "blobs", algo, digest)
        assert os.path.getsize(path) == desc["size"]
        run(["sh", "-c", f'[ "$(sha256sum < {path} | cut -d" " -f1)" = {digest} ]'], check=True)
        return path

    index = json.load(open(os.path.join(layout, "index.json")))
    [mdesc] = index["manifests"]
    manifest = json.load(open(blob(mdesc)))
    config = json.load(open(blob(manifest["config"])))
    rootfs = os.path.join(dest, "rootfs")
    os.makedirs(rootfs)
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        with tarfile.open(blob(layer), "r:gz") as t:
            t.extractall(rootfs)
    return config, rootfs


@pytest.mark.timeout(300)
def test_agent_image_runs_against_the_cluster(cluster, build_dir):
    """make agent-image, unpack the image, and use its agent for a session."""
    skip_if_sanitized(build_dir)
    make(build_dir, "agent-image")
    with tempfile.TemporaryDirectory(prefix="podenv-oci.") as d:
        config, rootfs = unpack_oci(os.path.join(build_dir, "podenv-agent-oci.tar"), d)
        # The image is named what the config's agent.image asks for by default.
        [mdesc] = json.load(open(os.path.join(d, "layout", "index.json")))["manifests"]
        r = run([os.path.join(build_dir, "podenv"), "config", "schema"], check=True)
        default = json.loads(r.stdout)["properties"]["agent"]["properties"]["image"]["default"]
        version = run([os.path.join(build_dir, "podenv"), "--version"], check=True).stdout.split()[1]
        assert default == f"localhost/podenv-agent:{version}"
        assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == default
        assert mdesc["annotations"]["io.containerd.image.name"] == default
        assert config["config"]["Labels"]["org.opencontainers.image.version"] == version
        entry = config["config"]["Entrypoint"]
        assert entry == ["/podenv-agent"]
        agent = os.path.join(rootfs, entry[0].lstrip("/"))
        r = run([agent, "--version"], check=True)
        assert r.stdout.startswith("podenv-agent ")
        r = run(["file", "-b", agent]) if shutil.which("file") else None
        if r is not None:
            assert "statically linked" in r.stdout
        env = dict(os.environ, PODENV_AGENT=agent)
        r = run([os.path.join(build_dir, "podenv"), "exec", "-t", f"pid/{cluster.pod_pid}",
                 "--", "cat", "/etc/hostname"], env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "bear-pod\n"


def dpkg(*args):
    """dpkg ARGS, waiting (up to 2 min) while another dpkg or apt holds its lock."""
    deadline = time.monotonic() + 120
    while True:
        r = run(["dpkg", *args], timeout=120)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.returncode == 0, f"dpkg {' '.join(args)}: {r.stderr}"


@pytest.fixture
def deb_turn():
    """One deb test at a time on this machine: parallel test sessions would
    install and remove the same package under each other."""
    with open("/run/lock/podenv-e2e-deb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.mark.timeout(600)
def test_deb_installs_and_runs(cluster, build_dir, deb_turn):
    """make deb, dpkg -i, podenv from /usr/bin against the cluster, dpkg -r."""
    for tool in ("dpkg-buildpackage", "dh", "dpkg"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    if run(["dpkg-query", "-W", "podenv"]).returncode == 0 or os.path.exists("/usr/bin/podenv"):
        pytest.skip("podenv is already installed on this machine; not touching it")
    with tempfile.TemporaryDirectory(prefix="podenv-deb.") as d:
        make(build_dir, "deb", f"DEB_DIR={d}", timeout=150)
        [deb] = [f for f in os.listdir(d) if f.startswith("podenv_") and f.endswith(".deb")]
        dpkg("-i", os.path.join(d, deb))
        try:
            assert run(["/usr/bin/podenv", "--version"], check=True).stdout.startswith("podenv ")
            r = run(["/usr/bin/podenv-agent", "--version"], check=True)
            assert "protocol" in r.stdout
            r = run(["/usr/bin/podenv", "doctor"], timeout=30)
            assert r.returncode == 0, r.stdout + r.stderr
            env = {k: v for k, v in os.environ.items() if k != "PODENV_AGENT"}
            r = run(["/usr/bin/podenv", "exec", "-t", f"pid/{cluster.pod_pid}", "--",
                     "cat", "/etc/hostname"], env=env, timeout=60)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "bear-pod\n"
        finally:
            dpkg("-r", "podenv")
        assert not os.path.exists("/usr/bin/podenv")
