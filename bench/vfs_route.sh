#!/bin/sh
# Time vfs_route() with the decision cache missing and hitting.
# Usage: bench/vfs_route.sh [BUILD_DIR (default build)] [N distinct paths (default 100000)]
set -e
B=${1:-build}
N=${2:-100000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libvfs.a" "$B/libconfig.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_vfs_route" bench/vfs_route.c \
	"$B/libvfs.a" "$B/libconfig.a" "$B/libcommon.a" $(pkg-config --libs json-c libpcre2-8 yaml-0.1)
"$B/bench_vfs_route" "$N"
