#!/usr/bin/python3
"""`make bench`: run the benchmarks in bench/ and rewrite bench/RESULTS.md.

    bench/run.py [--results FILE] BUILD_DIR [NAME...]

Runs bench/NAME.sh BUILD_DIR for every NAME given, or for every bench/*.sh
when none is, following the convention in bench/README.md: the figures come
as Markdown on stdout, progress on stderr, exit status 0 on success. Each
script's stdout and stderr are kept in BUILD_DIR/bench-results/NAME.md and
NAME.log.

RESULTS.md gets a header (machine, date, command) and one section per
script, between <!-- bench:NAME --> markers: sections of scripts that ran
now are replaced, the others are kept as they were (each names its own run's
date, machine and command), sections of scripts that no longer exist are
dropped. Exit status 1 when a script failed; its section then says so with
the end of its log.
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BEGIN = "<!-- bench:{} -->"
END = "<!-- /bench:{} -->"
SECTION = re.compile(r"^<!-- bench:([\w.-]+) -->\n(.*?)^<!-- /bench:\1 -->\n", re.M | re.S)


def sh(cmd):
    r = subprocess.run(cmd, shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    return r.stdout.strip()


def machine():
    """One line naming the machine: CPU model, cores, memory, kernel."""
    model, sockets = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.strip() == "model name":
                model = " ".join(v.split())
            elif k.strip() == "physical id":
                sockets.add(v.strip())
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    virt = sh("systemd-detect-virt 2>/dev/null")
    return (f"{model}, {os.cpu_count()} logical CPUs"
            f"{f' ({len(sockets)} socket)' if len(sockets) == 1 else ''}, "
            f"{mem / 2**30:.1f} GiB RAM, Linux {platform.release()}"
            f"{f', virtualization: {virt}' if virt and virt != 'none' else ''}")


def tree():
    head = sh("git rev-parse --short HEAD") or "?"
    dirty = sh("git status --short --untracked-files=no | wc -l") or "0"
    return f"tree {head} ({dirty} tracked files modified)"


def script_info(path):
    """(title, knobs): the header's `# bench-title:` line (else its first
    comment line), and the environment variables that its `env:` part names
    ("env: ROUNDS (3), PINGS (20000), ...")."""
    title, knobs, in_env = None, [], False
    with open(path) as f:
        lines = f.read().split("\n")
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if text.startswith("bench-title:"):
            title = text.split(":", 1)[1].strip()
        elif title is None and text:
            title = text
        in_env = in_env or text.startswith("env:")
        if in_env:
            knobs += re.findall(r"\b([A-Z][A-Z0-9_]{2,})(?: \(|=)", text)
    return title or os.path.basename(path), list(dict.fromkeys(knobs))


def shift_headings(md):
    """Shift the script's headings so that its top level becomes ###, under
    the runner's ## per script (code blocks left alone)."""
    lines, fence = md.split("\n"), False
    levels = []
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            levels.append(len(line) - len(line.lstrip("#")))
    if not levels:
        return md
    d = 3 - min(levels)
    out, fence = [], False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            n = len(line) - len(line.lstrip("#"))
            line = "#" * max(1, min(6, n + d)) + line[n:]
        out.append(line)
    return "\n".join(out)


def run_one(name, build, outdir, idx):
    path = os.path.join(BENCH, name + ".sh")
    title, knobs = script_info(path)
    env_shown = [f"{k}={shlex.quote(os.environ[k])}" for k in knobs if k in os.environ]
    if os.access(path, os.X_OK):
        cmd = [path, build]
    else:  # not executable: its #! line names the interpreter (else sh)
        first = open(path).readline()
        cmd = (first[2:].split() if first.startswith("#!") else ["sh"]) + [path, build]
    shown = " ".join(env_shown + [f"bench/{name}.sh", shlex.quote(build)])
    # Each script's own mini cluster instance, so that a benchmark run
    # elsewhere on the machine at the same time cannot collide with it.
    env = dict(os.environ)
    env.setdefault("PODENV_CLUSTER_ID", f"b{os.getpid()}x{idx}")
    md_path = os.path.join(outdir, name + ".md")
    log_path = os.path.join(outdir, name + ".log")
    started = datetime.datetime.now(datetime.timezone.utc)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"  BENCH   {shown} -> {os.path.relpath(md_path, ROOT)}", flush=True)
    t0 = time.monotonic()
    with open(md_path, "w") as out, open(log_path, "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.PIPE, text=True,
                             errors="replace")
        echo = sys.stdout.isatty()

        def pump():
            for line in p.stderr:
                log.write(line)
                log.flush()
                if echo:
                    print(f"          {name}: {line.rstrip()}", flush=True)

        th = threading.Thread(target=pump)
        th.start()
        try:
            rc = p.wait()
        except KeyboardInterrupt:
            p.terminate()  # the script cleans up on SIGTERM (convention)
            p.wait()
            raise
        th.join()
    secs = time.monotonic() - t0
    body = open(md_path).read().strip("\n")
    head = [f"## {name}: {title}", "",
            f"- command: `{shown}` (from the repository root; `make bench` runs it)",
            f"- run: {started:%Y-%m-%d %H:%M} UTC, {secs:.0f} s, {tree()}, "
            f"load average before {' '.join(load)}",
            f"- machine: {machine()}", ""]
    if rc != 0:
        tail = open(log_path).read().rstrip("\n").split("\n")[-15:]
        print(f"  FAILED  bench/{name}.sh (exit {rc}), log: {os.path.relpath(log_path, ROOT)}")
        for line in tail[-5:]:
            print(f"          {line}")
        text = head + [f"**Failed** in this run (exit status {rc}); the end of its log "
                       f"(`{os.path.relpath(log_path, ROOT)}`):", "", "```", *tail, "```"]
        return "\n".join(text) + "\n", False, title
    summary = ""
    first = body.split("\n", 1)[0] if body else ""
    if first.startswith("> "):
        summary = first[2:].strip()
    print(f"  done    bench/{name}.sh in {secs:.0f} s")
    return "\n".join(head) + "\n" + shift_headings(body) + "\n", True, summary or title


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(BENCH, "RESULTS.md"))
    ap.add_argument("build")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    build = os.path.realpath(a.build)
    every = sorted(f[:-3] for f in os.listdir(BENCH) if f.endswith(".sh"))
    names = a.names or every
    unknown = [n for n in names if n not in every]
    if unknown:
        sys.exit(f"bench/run.py: no bench/{unknown[0]}.sh (have: {' '.join(every)})")
    outdir = os.path.join(build, "bench-results")
    os.makedirs(outdir, exist_ok=True)

    old = {}
    if os.path.exists(a.results):
        for m in SECTION.finditer(open(a.results).read()):
            old[m.group(1)] = m.group(2)
    new, failed = {}, []
    for i, n in enumerate(names):
        text, ok, summary = run_one(n, build, outdir, i)
        new[n] = (text, summary)
        if not ok:
            failed.append(n)

    now = datetime.datetime.now(datetime.timezone.utc)
    cmd = "make bench" + (f" O={os.path.relpath(build, ROOT)}") + (
        f" BENCH=\"{' '.join(a.names)}\"" if a.names else "")
    out = ["# Benchmark results", "",
           "Generated by `make bench` (`bench/run.py`): do not edit by hand. How a",
           "benchmark plugs in: `bench/README.md`. Analysis of earlier runs, profiles",
           "and why targets were missed: `bench/NOTES.md`.", "",
           f"Last run: `{cmd}`, {now:%Y-%m-%d %H:%M} UTC, {tree()}, on {machine()}, "
           f"{sh('cc --version | head -1')}.",
           "Each section names its own run; sections not run by the last command are",
           "kept from an earlier one.", "",
           "| benchmark | run (UTC) | result |", "|---|---|---|"]
    sections = []
    for n in every:
        if n in new:
            text, summary = new[n]
            when = f"{now:%Y-%m-%d}"
        elif n in old:
            text = old[n]
            m = re.search(r"^- run: (\S+ \S+)", text, re.M)
            when = m.group(1) if m else "?"
            m = re.search(r"^> (.*)$", text, re.M)
            summary = m.group(1) if m else re.sub(r"^## [^:]*: ", "", text.split("\n", 1)[0])
        else:
            text = f"## {n}\n\nNot run yet: `make bench BENCH={n}`.\n"
            when, summary = "–", "not run yet"
        if "**Failed** in this run" in text:
            summary = "**failed**"
        if n in new:
            m = re.search(r"^- run: (\S+ \S+)", text, re.M)
            when = m.group(1) if m else when
        anchor = re.sub(r"[^\w\- ]", "", text.split("\n", 1)[0][3:]).strip().lower().replace(" ", "-")
        out.append(f"| [{n}](#{anchor}) | {when} | {summary.replace('|', '/')} |")
        sections.append(BEGIN.format(n) + "\n" + text.rstrip("\n") + "\n\n" + END.format(n))
    out.append("")
    tmp = a.results + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n" + "\n\n".join(sections) + "\n")
    os.replace(tmp, a.results)
    print(f"  WROTE   {os.path.relpath(a.results, ROOT)}")
    if failed:
        print(f"failed: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
