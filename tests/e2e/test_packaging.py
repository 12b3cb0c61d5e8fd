"""Packaging (issue 9): completions, man pages, `make install`, the agent image.

All of them use the build folder under test (PODENV_BUILD) as the Makefile's
O=, so they build nothing new there beyond the man pages and the schema.
"""
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from conftest import ROOT, run

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
    assert "doctor" in complete("podenv", "")
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
