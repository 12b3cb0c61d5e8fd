#!/bin/sh
# Time vnet's per-packet work (parse + rewrite + checksums) and NAT lookups.
# Usage: bench/vnet_packet.sh [BUILD_DIR (default build)] [N iterations (default 5000000)]
set -e
B=${1:-build}
N=${2:-5000000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libvnet.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_vnet_packet" bench/vnet_packet.c \
	"$B/libvnet.a" "$B/libcommon.a"
"$B/bench_vnet_packet" "$N"
