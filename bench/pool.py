#!/usr/bin/python3
"""Pool benchmark samples over rounds and print medians and ratios.

    pool.py hyperfine KEY=LABEL... -- r1.json r2.json ...
        Pools hyperfine's per-run times by command over all the files (the
        rounds); KEY is the command's position in the hyperfine call (0..).
        Prints one line per command: label n min_ms median_ms, then exits.
    pool.py values FILE
        FILE has lines "label value"; prints label n min median max.

Used by bench/agent.sh and bench/exec.sh; the ratios are computed there.
"""
import json
import statistics
import sys


def main():
    mode = sys.argv[1]
    if mode == "hyperfine":
        sep = sys.argv.index("--")
        labels = dict(a.split("=", 1) for a in sys.argv[2:sep])
        pooled = {}
        for f in sys.argv[sep + 1:]:
            with open(f) as fh:
                for i, r in enumerate(json.load(fh)["results"]):
                    pooled.setdefault(i, []).extend(r["times"])
        for i in sorted(pooled):
            t = pooled[i]
            print(f"{labels.get(str(i), str(i))} {len(t)} {min(t) * 1e3:.3f} "
                  f"{statistics.median(t) * 1e3:.3f}")
    elif mode == "values":
        vals = {}
        with open(sys.argv[2]) as fh:
            for line in fh:
                k, v = line.split()
                vals.setdefault(k, []).append(float(v))
        for k, v in vals.items():
            print(f"{k} {len(v)} {min(v):.3f} {statistics.median(v):.3f} {max(v):.3f}")
    else:
        sys.exit("usage: pool.py hyperfine|values ...")


main()
