#!/usr/bin/python3
"""Test runner behind `make check`, `make unit`, `make e2e` and `make asan`.

Runs every unit-test binary under BUILD/tests/unit (TAP output), replays each
fuzz target over its committed corpus (tests/fuzz/corpus/<target>/), then the
end-to-end suite with pytest, and ends with one line:
    N passed, N failed, N skipped
Exit status is non-zero when anything failed.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_TIMEOUT = 300


def run_unit(build):
    passed = failed = skipped = 0
    unit_dir = os.path.join(build, "tests", "unit")
    bins = []
    for d, _, files in os.walk(unit_dir):
        for f in files:
            p = os.path.join(d, f)
            if f.startswith("test_") and os.access(p, os.X_OK) and not f.endswith(".d"):
                bins.append(p)
    for b in sorted(bins):
        name = os.path.relpath(b, unit_dir)
        try:
            out = subprocess.run([b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=UNIT_TIMEOUT, cwd=ROOT).stdout.decode(errors="replace")
        except subprocess.TimeoutExpired:
            print(f"not ok {name}: timed out after {UNIT_TIMEOUT}s")
            failed += 1
            continue
        p = len(re.findall(r"^ok \d+ .*(?<!# SKIP)$", out, re.M))
        s = len(re.findall(r"^ok \d+ .*# SKIP$", out, re.M))
        f = len(re.findall(r"^not ok ", out, re.M))
        plan = re.search(r"^1\.\.(\d+)$", out, re.M)
        if not plan or int(plan.group(1)) != p + s + f:
            f += 1  # crashed mid-run or printed no plan
            out += f"\n# {name}: plan does not match results (crash?)\n"
        passed, failed, skipped = passed + p, failed + f, skipped + s
        status = "ok" if f == 0 else "FAILED"
        print(f"unit {name}: {p} passed, {f} failed, {s} skipped  [{status}]")
        if f:
            for line in out.splitlines():
                if line.startswith("not ok") or line.startswith("#"):
                    print("    " + line)
    # Fuzz corpus replay: each input must run without a crash or sanitizer report.
    fuzz_dir = os.path.join(build, "tests", "fuzz")
    if os.path.isdir(fuzz_dir):
        for f in sorted(os.listdir(fuzz_dir)):
            if not f.endswith("_replay"):
                continue
            target = f[: -len("_replay")]
            corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
            inputs = sorted(os.path.join(corpus, x) for x in os.listdir(corpus)) \
                if os.path.isdir(corpus) else []
            r = subprocess.run([os.path.join(fuzz_dir, f)] + inputs, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=UNIT_TIMEOUT)
            if r.returncode == 0:
                passed += 1
                print(f"fuzz-replay {target}: {len(inputs)} inputs  [ok]")
            else:
                failed += 1
                print(f"fuzz-replay {target}: FAILED\n" + r.stdout.decode(errors="replace")[-3000:])
    return passed, failed, skipped


def run_e2e(build, extra):
    env = dict(os.environ)
    env["PODENV_BUILD"] = os.path.abspath(build)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "e2e.xml")
        cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
               f"--junitxml={xml}", os.path.join(ROOT, "tests", "e2e")] + extra
        r = subprocess.run(cmd, env=env, cwd=ROOT)
        if not os.path.exists(xml):
            print(f"e2e: pytest exited {r.returncode} without results")
            return 0, 1, 0
        suite = ET.parse(xml).getroot()
        if suite.tag == "testsuites":
            suite = suite[0]
        total = int(suite.get("tests", 0))
        f = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        s = int(suite.get("skipped", 0))
        if r.returncode not in (0, 1, 5) and f == 0:
            f = 1  # pytest itself failed (usage error, internal error)
        return total - f - s, f, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["unit", "e2e", "all"])
    ap.add_argument("--build", default="build")
    ap.add_argument("pytest_args", nargs="*")
    a = ap.parse_args()
    totals = [0, 0, 0]
    if a.what in ("unit", "all"):
        for i, v in enumerate(run_unit(a.build)):
            totals[i] += v
    if a.what in ("e2e", "all"):
        for i, v in enumerate(run_e2e(a.build, a.pytest_args)):
            totals[i] += v
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
