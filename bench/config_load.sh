#!/bin/sh
# Time cfg_load() on the reference's complete example.
# Usage: bench/config_load.sh [BUILD_DIR (default build)] [N (default 2000)]
set -e
B=${1:-build}
N=${2:-2000}
cd "$(dirname "$0")/.."
make --no-print-directory O="$B" "$B/libconfig.a" "$B/libcommon.a" >/dev/null
gcc -std=gnu17 -D_GNU_SOURCE -I. -O2 -o "$B/bench_config_load" bench/config_load.c \
	"$B/libconfig.a" "$B/libcommon.a" $(pkg-config --libs json-c libpcre2-8 yaml-0.1)
"$B/bench_config_load" tests/unit/config/data/complete.json "$N"
"$B/bench_config_load" tests/unit/config/data/complete.yaml "$N"
