#!/bin/sh
# bench-title: configuration loading, cfg_load() on the reference's complete example (target < 2 ms)
# Time cfg_load() on the reference's complete example (JSON and YAML).
# Usage: bench/config_load.sh [BUILD_DIR (default build)] [N (default 2000)]
# Prints Markdown (bench/README.md). The baseline is json-c's parse alone of
# the same file: the part of loading that any JSON config reader pays.
set -e
B=${1:-build}
N=${2:-2000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libconfig.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_config_load" bench/config_load.c \
	"$B/libconfig.a" "$B/libcommon.a" $(pkg-config --cflags --libs json-c libpcre2-8 yaml-0.1)
{
	"$B/bench_config_load" tests/unit/config/data/complete.json "$N"
	"$B/bench_config_load" tests/unit/config/data/complete.yaml "$N"
} >"$B/bench_config_load.out"
/usr/bin/python3 - "$B/bench_config_load.out" "$N" <<'PY'
import re, sys
rows = [dict(re.findall(r"(\w+)=([\w./-]+)", l)) | {"file": l.split()[1].rstrip(":")}
        for l in open(sys.argv[1]) if l.startswith("config_load ")]
base = [dict(re.findall(r"(\w+)=([\w./-]+)", l)) for l in open(sys.argv[1]) if l.startswith("json_parse ")]
j = next(r for r in rows if r["file"].endswith(".json"))
med = float(j["median"])
print(f"> complete.json: median {med:.0f} µs per load, {2000 / med:.0f}× under the 2 ms target"
      + (f"; {med / float(base[0]['median']):.1f}× json-c's parse alone" if base else ""))
print()
print(f"`cfg_load()` then `cfg_free()` (outside the timed region), {sys.argv[2]} times per file: read, render the "
      "template, parse, map every field, compile every pattern (PCRE2 + JIT), apply env, validate.")
print()
print("| input | first load in process µs | mean µs | median µs | p99 µs | max µs | median vs json-c parse alone | vs target 2 ms |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    b = next((x for x in base if x.get("file") == r["file"]), None)
    ratio = f"{float(r['median']) / float(b['median']):.1f}× ({float(b['median']):.0f} µs)" if b else "–"
    print(f"| {r['file'].split('/')[-1]} | {r['first']} | {r['mean']} | {r['median']} | {r['p99']} | {r['max']} | "
          f"{ratio} | {float(r['median']) / 2000:.3f} |")
PY
