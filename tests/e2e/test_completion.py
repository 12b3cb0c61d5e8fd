"""zsh and fish completions (issue 9): subcommands and `-t` targets, as the
shells load them once installed (zsh: `#compdef` from $fpath through
compinit; fish: podenv.fish from $fish_complete_path). The bash completion's
tests are in test_packaging.py. zsh and fish are in DEPS_PKGS (`make deps`).
"""
import os
import shutil
import tempfile

import pytest

from conftest import ROOT, build_dir_path, run

COMPLETIONS = ROOT / "packaging" / "completions"

# Completes LINE in an interactive zsh driven through zpty, with COMPDIR
# first in $fpath, and writes every candidate offered to the completion
# system (with its -p/-P prefix) to OUTFILE, then __DONE__. compadd is
# wrapped to record; one widget completes and then writes __DONE__, so no
# typed-ahead key can be lost while the completion runs.
ZSH_CAPTURE = r"""
zmodload zsh/zpty || exit 3
compdir=$1 out=$2 line=$3
: >$out
zpty z zsh -f -i
sync() { # run a command, wait for its marker (quoted: the echoed line does not match)
	zpty -w z "$1; print __SY''NC$2__"
	zpty -r -m z x "*__SYNC$2__*" || exit 5
}
sync "bindkey -e; unsetopt AUTO_LIST LIST_AMBIGUOUS BEEP" 1
sync "fpath=(${(q)compdir} \$fpath); autoload -Uz compinit; compinit -u -D" 2
sync "compadd() { local -a __h; local -A __o; builtin compadd -A __h \"\$@\"; zparseopts -E -A __o p: P: 2>/dev/null; local h; for h in \$__h; do print -r -- \"\${__o[-p]}\${__o[-P]}\$h\" >>${(q)out}; done; builtin compadd \"\$@\"; }" 3
sync "zle -C __complete complete-word _main_complete; __capture() { zle __complete; print -r -- __DONE__ >>${(q)out}; }; zle -N __capture; bindkey '^T' __capture" 4
zpty -w -n z "$line"$'\C-t'
for i in {1..200}; do
	grep -q __DONE__ $out 2>/dev/null && break
	sleep 0.05
done
zpty -d z
grep -q __DONE__ $out || exit 4
"""


def need(shell):
    # Installable here (DEPS_PKGS): a missing shell is a failure, not a skip.
    assert shutil.which(shell), f"{shell} is not installed: run `make deps`"


def zsh_complete(line):
    """Candidates zsh's completion system is offered for `line` (cursor at its end)."""
    need("zsh")
    with tempfile.TemporaryDirectory(prefix="podenv-zsh.") as d:
        script, out = os.path.join(d, "capture.zsh"), os.path.join(d, "out")
        with open(script, "w") as f:
            f.write(ZSH_CAPTURE)
        r = run(["zsh", "-f", script, str(COMPLETIONS), out, line], timeout=30)
        assert r.returncode == 0, f"zsh capture failed ({r.returncode}): {r.stderr}"
        got = open(out).read().split("\n")
    assert "__DONE__" in got
    return sorted({w for w in got if w and w != "__DONE__"})


def fish_complete(line):
    """What fish offers for `line`, the completion autoloaded by file name."""
    need("fish")
    # fish loads a command's completions only when the command is on $PATH.
    env = dict(os.environ, PATH=f"{build_dir_path()}:{os.environ['PATH']}")
    r = run(["fish", "--no-config", "-c",
             f"set -p fish_complete_path {COMPLETIONS}; complete -C {line!r}"], env=env, check=True)
    return sorted({w.split("\t")[0] for w in r.stdout.split("\n") if w})


def subcommands():
    """The commands `podenv --help` lists: the completions must offer all of them."""
    r = run([os.path.join(build_dir_path(), "podenv"), "--help"], check=True)
    text = r.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return sorted(line.split()[0] for line in text.splitlines())


@pytest.mark.parametrize("complete", [zsh_complete, fish_complete], ids=["zsh", "fish"])
def test_completes_subcommands(complete):
    assert complete("podenv ex") == ["exec", "explain"]
    assert "ls" in subcommands()
    assert complete("podenv ") == subcommands()
    assert complete("podenv help sh") == ["shell"]


@pytest.mark.parametrize("complete", [zsh_complete, fish_complete], ids=["zsh", "fish"])
def test_completes_pid_targets(complete):
    got = complete("podenv exec -t pid/1")
    assert "pid/1" in got
    assert all(w.startswith("pid/1") for w in got), got
    mine = f"pid/{os.getpid()}"  # a process that outlives the completion
    assert mine in complete("podenv exec -t pid/")
    assert mine in complete("podenv shell --target pid/")
    assert "pid/" in complete("podenv mount -t p")
    kinds = complete("podenv exec -t ")
    assert {"pid/", "pod/", "deployment/"} <= set(kinds), kinds
