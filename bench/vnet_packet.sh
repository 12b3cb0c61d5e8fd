#!/bin/sh
# bench-title: vnet packet path (parse + rewrite + checksums) and NAT table
# Time vnet's per-packet work (parse + rewrite + checksums) and NAT lookups.
# Usage: bench/vnet_packet.sh [BUILD_DIR (default build)] [N iterations (default 3000000)]
# Prints Markdown (bench/README.md); the baseline of the incremental rewrite
# is one full checksum pass over the same packet (what recomputing costs).
set -e
B=${1:-build}
N=${2:-3000000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libvnet.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_vnet_packet" bench/vnet_packet.c \
	"$B/libvnet.a" "$B/libcommon.a"
"$B/bench_vnet_packet" "$N" >"$B/bench_vnet_packet.out"
/usr/bin/python3 - "$B/bench_vnet_packet.out" "$N" <<'PY'
import re, sys
pk, nat = [], []
for l in open(sys.argv[1]):
    m = re.match(r"(IPv[46] \w+), (.*?)\s+(\d+) B\s+parse\+tuple\+rewrite:\s+([0-9.]+) M pkt/s \(\s*(\d+) ns\)\s+full csum pass:\s+(\d+) ns", l)
    if m:
        pk.append(m.groups())
    m = re.match(r"NAT\s+(\d+) entries.*?by tuple\s+([0-9.]+) M/s \(\s*(\d+) ns\), \+touch\s+([0-9.]+) M/s \(\s*(\d+) ns\), by port\s+([0-9.]+) M/s \(\s*(\d+) ns\), add\+remove\s+([0-9.]+) M/s \(\s*(\d+) ns\)", l)
    if m:
        nat.append(m.groups())
big = [p for p in pk if p[2].startswith("655")]
print(f"> rewrite {max(int(p[4]) for p in pk)} ns or less per packet whatever its size; a full checksum of a 64 KiB packet: "
      f"{min(int(p[5]) for p in big) / 1e3:.1f}–{max(int(p[5]) for p in big) / 1e3:.1f} µs")
print()
print(f"`vnet_packet_parse` + `vnet_packet_tuple` + `vnet_packet_set_src` + `vnet_packet_set_dst` (RFC 1624 incremental "
      f"update of the IP header and UDP/TCP checksums) on one datagram, {sys.argv[2]} times; next to it one full checksum "
      "pass over the same packet (`vnet_packet_csum_ok`).")
print()
print("| packet | size | parse+tuple+rewrite | full checksum pass | full checksum ÷ rewrite |")
print("|---|---|---|---|---|")
for fam, what, size, mps, ns, csum in pk:
    print(f"| {fam}, {what} | {size} B | {mps} M pkt/s ({ns} ns) | {csum} ns | {int(csum) / max(int(ns), 1):.2f}× |")
print()
print("| NAT table | lookup by tuple | by tuple + touch | by NAT port | add+remove |")
print("|---|---|---|---|---|")
for n, a, an, b, bn, c, cn, d, dn in nat:
    print(f"| {int(n):,} entries, random order | {a} M/s ({an} ns) | {b} M/s ({bn} ns) | {c} M/s ({cn} ns) | {d} M/s ({dn} ns) |")
PY
