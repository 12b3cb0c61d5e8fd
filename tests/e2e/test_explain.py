"""podenv explain (pure configuration: no cluster) and podenv exec --trace
(against the mini cluster): the verdict and the rule for files, names and
connections, and the proof that a running session decides what explain
says (both print the same rule text, from the same code)."""
import json
import os
import secrets
import subprocess

import pytest

from conftest import ROOT, run

COMPLETE = str(ROOT / "tests" / "e2e" / "data" / "mirrord-complete.json")
HOME = "/home/podenve2e"
ARGS = ["/etc/hosts", "/app/config.yaml", "~/.kube/config", "api:80", "1.1.1.1:53"]


def podenv(build_dir):
    return os.path.join(build_dir, "podenv")


def env_for_explain():
    e = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "MIRRORD_CONFIG_FILE")}
    e["HOME"] = HOME
    return e


def explain(build_dir, *args, config=None, cwd="/tmp", check=True):
    cmd = [podenv(build_dir), "explain"]
    if config:
        cmd += ["-f", config]
    r = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30, env=env_for_explain(), cwd=cwd)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_explain_default_config(build_dir):
    r = explain(build_dir, *ARGS)
    assert r.stdout.splitlines() == [
        'file /etc/hosts: remote read-only: default remote list[1] "^/etc/hosts$" (step 7)',
        'file /etc/hosts (write): local: default local list[15] "^/etc(/|$)" (step 8)',
        "file /app/config.yaml: remote read-only: mode read (step 9)",
        "file /app/config.yaml (write): local: mode read (step 9, open for writing goes local)",
        f'file {HOME}/.kube/config: not found: default not-found list[1] "^{HOME}/\\.kube" (step 6)',
        "dns api: remote: feature.network.dns: no filter: everything remote",
        "tcp api:80: remote: feature.network.outgoing: no filter: everything remote",
        "tcp 1.1.1.1:53: remote: feature.network.outgoing: no filter: everything remote",
    ]


def test_explain_complete_example(build_dir):
    """The reference's complete config.json (a copy in tests/e2e/data)."""
    r = explain(build_dir, *ARGS, "google.com:443", config=COMPLETE)
    assert r.stdout.splitlines() == [
        'file /etc/hosts: remote read-only: default remote list[1] "^/etc/hosts$" (step 7)',
        'file /etc/hosts (write): local: default local list[15] "^/etc(/|$)" (step 8)',
        'file /app/config.yaml: remote read-only: feature.fs.read_only[0] ".+\\.yaml" (step 4)',
        'file /app/config.yaml (write): local: feature.fs.read_only[0] ".+\\.yaml" '
        "(step 4, open for writing goes local)",
        f'file {HOME}/.kube/config: not found: default not-found list[1] "^{HOME}/\\.kube" (step 6)',
        "dns api: remote: feature.network.dns.filter.local: no entry matches",
        "tcp api:80: remote: feature.network.outgoing.filter.local: no entry matches "
        "(1 address entry would be checked against the addresses api resolves to)",
        'tcp 1.1.1.1:53: local: feature.network.outgoing.filter.local[3] ":53"',
        'dns google.com: local: feature.network.dns.filter.local[2] "google.com"',
        'tcp google.com:443: local: feature.network.outgoing.filter.local[2] "google.com" '
        "(would match connections to the addresses google.com resolves to)",
    ]


def test_explain_forms(build_dir, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"feature": {
        "fs": {"mode": "write", "read_write": ["\\.json$"], "not_found": ["^/secret"]},
        "network": {"outgoing": {"udp": False, "filter": {"remote": ["10.0.0.0/8", "db:5432"]}},
                    "dns": {"filter": {"remote": ["db"]}}}}}))
    r = explain(build_dir, "https://user@api.example/x?y", "http://db", "postgres://db",
                "udp://10.1.2.3:9", "udp://8.8.8.8:53", "10.9.9.9", "[::1]:80",
                "/secret/k", "./a.json", "../t/./x//y", config=str(cfg), cwd=str(tmp_path))
    parent = os.path.dirname(str(tmp_path))
    assert r.stdout.splitlines() == [
        "dns api.example: local: feature.network.dns.filter.remote: no entry matches",
        "tcp api.example:443: local: feature.network.outgoing.filter.remote: no entry matches "
        "(1 address entry would be checked against the addresses api.example resolves to)",
        'dns db: remote: feature.network.dns.filter.remote[0] "db"',
        "tcp db:80: local: feature.network.outgoing.filter.remote: no entry matches "
        "(1 address entry would be checked against the addresses db resolves to)",
        'dns db: remote: feature.network.dns.filter.remote[0] "db"',
        'tcp db:5432: remote: feature.network.outgoing.filter.remote[1] "db:5432" '
        "(would match connections to the addresses db resolves to)",
        "udp 10.1.2.3:9: local: feature.network.outgoing.udp: false",
        "udp 8.8.8.8:53: dns: UDP to port 53 goes to podenv's DNS server, whatever the address "
        "(each name then follows feature.network.dns)",
        'tcp 10.9.9.9: remote: feature.network.outgoing.filter.remote[0] "10.0.0.0/8"',
        "tcp [::1]:80: local: the app's loopback (IPv6 ::1 never leaves the app's network)",
        'file /secret/k: not found: feature.fs.not_found[0] "^/secret" (step 2)',
        f'file {tmp_path}/a.json: remote read-write: feature.fs.read_write[0] "\\.json$" (step 3)',
        f"file {parent}/t/x/y: local: default local list[22] \"^/tmp(/|$)\" (step 8)",
    ]


def test_explain_errors_and_help(build_dir):
    r = explain(build_dir, "api:99999", "/etc/hosts", "bogus://h", check=False)
    assert r.returncode == 2
    assert r.stdout.startswith("file /etc/hosts: ")
    assert "api:99999: the port must be a number" in r.stderr
    assert "bogus://h: give a port" in r.stderr
    r = explain(build_dir, check=False)
    assert r.returncode == 2 and "nothing to explain" in r.stderr
    r = run([podenv(build_dir), "help"], check=True)
    for cmd in ("explain", "doctor"):
        assert any(line.split()[:1] == [cmd] for line in r.stdout.splitlines()), r.stdout


# --- exec --trace ------------------------------------------------------------------------


def traced_exec(cluster, build_dir, tmp_path, script, config=None):
    trace = tmp_path / f"trace-{secrets.token_hex(3)}.jsonl"
    args = [podenv(build_dir), "exec", "-t", f"pid/{cluster.pod_pid}"]
    if config:
        args += ["-f", config]
    # --trace after a config flag and before the command: exec's option loop.
    args += ["--trace", str(trace), "--", "sh", "-c", script]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, env=env_for_explain(), cwd="/tmp")
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return r, lines


def explained(build_dir, arg, config=None):
    """explain's one read line for arg, split into (kind+object, verdict, rule)."""
    out = explain(build_dir, arg, config=config).stdout.splitlines()
    head, verdict, rule = out[0].split(": ", 2)
    return head, verdict, rule


def assert_file_agrees(build_dir, lines, path, config=None):
    mine = [x for x in lines if x["kind"] == "file" and x["path"] == path and x["flags"] == "read"]
    assert mine, f"no trace line for {path}: {lines}"
    head, verdict, rule = explained(build_dir, path, config)
    assert head == f"file {path}"
    for x in mine:
        assert "override" not in x
        assert (x["verdict"], x["rule"]) == (verdict, rule)
        assert x["mapped"] == path
    return mine[0]


def assert_dns_agrees(build_dir, lines, config=None):
    names = [x for x in lines if x["kind"] == "dns" and x["name"].split(".")[0] == "api"]
    assert names, lines
    for x in names:
        head, verdict, rule = explained(build_dir, x["name"], config)
        assert head == f"dns {x['name']}"
        assert (x["verdict"], x["rule"]) == (verdict, rule)
    return names


@pytest.mark.timeout(120)
def test_trace_agrees_with_explain(cluster, build_dir, tmp_path):
    r, lines = traced_exec(cluster, build_dir, tmp_path,
                           "cat /app/config.yaml; cat /etc/os-release >/dev/null; getent hosts api")
    assert r.returncode == 0, r.stderr
    assert "api" in r.stdout
    # no line twice
    assert len({json.dumps(x, sort_keys=True) for x in lines}) == len(lines)
    x = assert_file_agrees(build_dir, lines, "/app/config.yaml")
    assert (x["verdict"], x["pattern"]) == ("remote read-only", None)
    x = assert_file_agrees(build_dir, lines, "/etc/os-release")
    assert (x["verdict"], x["pattern"]) == ("local", "^/etc(/|$)")
    for x in assert_dns_agrees(build_dir, lines):
        assert x["verdict"] == "remote"
        assert x["rule"] == "feature.network.dns: no filter: everything remote"


@pytest.mark.timeout(120)
def test_trace_agrees_with_explain_filters(cluster, build_dir, tmp_path):
    """Rules from user lists and filters, and a TCP connection matched by a
    name entry (in the session: by the addresses the pod's DNS gave)."""
    cfg = tmp_path / "filters.json"
    cfg.write_text(json.dumps({"feature": {
        "fs": {"read_only": ["\\.yaml$"], "local": ["^/etc/os-release$"]},
        "network": {"outgoing": {"filter": {"remote": ["api:80"]}},
                    "dns": {"filter": {"local": ["localhost"]}}}}}))
    r, lines = traced_exec(cluster, build_dir, tmp_path,
                           "cat /app/config.yaml; cat /etc/os-release >/dev/null; "
                           "getent hosts api; curl -s -m 10 -o /dev/null http://api/ && echo ok",
                           config=str(cfg))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout, r.stderr
    x = assert_file_agrees(build_dir, lines, "/app/config.yaml", str(cfg))
    assert x["rule"] == 'feature.fs.read_only[0] "\\.yaml$" (step 4)'
    x = assert_file_agrees(build_dir, lines, "/etc/os-release", str(cfg))
    assert x["rule"] == 'feature.fs.local[0] "^/etc/os-release$" (step 5)'
    for x in assert_dns_agrees(build_dir, lines, str(cfg)):
        assert x["rule"] == "feature.network.dns.filter.local: no entry matches"
    flows = [x for x in lines if x["kind"] == "tcp" and x["dest"].endswith(":80")]
    assert flows, lines
    # explain: 'dns api: ...' first; the connection is the second line
    out = explain(build_dir, "api:80", config=str(cfg)).stdout.splitlines()
    head, verdict, rule = out[1].split(": ", 2)
    assert (head, verdict) == ("tcp api:80", "remote")
    assert rule == ('feature.network.outgoing.filter.remote[0] "api:80" '
                    "(would match connections to the addresses api resolves to)")
    for x in flows:
        assert x["verdict"] == verdict
        assert x["rule"] == ('feature.network.outgoing.filter.remote[0] "api:80" '
                             "(an address the app's DNS answers gave for api)")
