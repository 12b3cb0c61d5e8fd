#!/bin/sh
# bench-title: path routing, vfs_route() (the rule chain behind every FUSE request)
# Time vfs_route() with the decision cache missing and hitting.
# Usage: bench/vfs_route.sh [BUILD_DIR (default build)] [N distinct paths (default 100000)]
# Prints Markdown (bench/README.md); the cache hit is the baseline a miss is
# compared with.
set -e
B=${1:-build}
N=${2:-100000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libvfs.a" "$B/libconfig.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_vfs_route" bench/vfs_route.c \
	"$B/libvfs.a" "$B/libconfig.a" "$B/libcommon.a" $(pkg-config --libs json-c libpcre2-8 yaml-0.1)
"$B/bench_vfs_route" "$N" >"$B/bench_vfs_route.out"
/usr/bin/python3 - "$B/bench_vfs_route.out" "$N" <<'PY'
import re, sys
r = {}
for l in open(sys.argv[1]):
    m = re.match(r"(\w+)\s+(miss|hit):\s+(\d+) ops/s\s+([0-9.]+) us/op", l)
    if m:
        r[(m.group(1), m.group(2))] = (int(m.group(3)), float(m.group(4)))
    m = re.match(r"(\w+)\s+vfs_router_new ([0-9.]+) ms, vfs_plan_new ([0-9.]+) ms", l)
    if m:
        r[(m.group(1), "new")] = (m.group(2), m.group(3))
miss, hit = r[("user", "miss")], r[("user", "hit")]
print(f"> user config: {miss[1]:.2f} µs per path through the whole rule chain, {hit[1] * 1e3:.0f} ns from the decision cache ({miss[1] / hit[1]:.1f}× faster)")
print()
print(f"miss: {sys.argv[2]} distinct app-like paths (more than the 8192-slot decision cache), half opened for writing; "
      "hit: 1,000 paths asked 200 times each. defaults = empty config; user = read_only, read_write, local, not_found and a mapping.")
print()
print("| config | miss (whole rule chain) | hit (decision cache) | hit vs miss | `vfs_router_new` | `vfs_plan_new` |")
print("|---|---|---|---|---|---|")
for c in ("defaults", "user"):
    (mo, mu), (ho, hu), (rn, pn) = r[(c, "miss")], r[(c, "hit")], r[(c, "new")]
    print(f"| {c} | {mo / 1e6:.2f} M ops/s ({mu:.2f} µs) | {ho / 1e6:.2f} M ops/s ({hu * 1e3:.0f} ns) | "
          f"{mu / hu:.1f}× faster | {rn} ms | {pn} ms |")
PY
