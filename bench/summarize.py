#!/usr/bin/env python3
"""bench/summarize.py: print the median table of a bench/load.sh run.

Usage: bench/summarize.py OUT_DIR
  Reads OUT_DIR/results.tsv (one line per wrk run, written by load.sh:
  target workload run rps p50_us p99_us errors requests first_error) and
  OUT_DIR/status.tsv (target status note), prints the table of medians per
  (target, workload) and the req/s and p50 ratios to `bare`, and writes the same text
  to OUT_DIR/summary.txt.
"""

import csv
import statistics
import sys
from pathlib import Path

WORKLOAD_ORDER = ["w1", "w2", "w3"]
WORKLOAD_NAME = {
    "w1": "W1 GET cnt/la (reader)",
    "w2": "W2 POST cin (reader)",
    "w3": "W3 GET CSEBase (admin)",
}


def main() -> int:
    out = Path(sys.argv[1])
    rows = []
    results = out / "results.tsv"
    if results.exists():
        with results.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    status = []
    if (out / "status.tsv").exists():
        with (out / "status.tsv").open() as f:
            status = [line.rstrip("\n").split("\t", 2) for line in f if line.strip()]

    targets = []
    for r in rows:
        if r["target"] not in targets:
            targets.append(r["target"])

    med = {}
    lines = []
    hdr = f"{'target':<15} {'workload':<24} {'runs':>4} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>16}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for t in targets:
        for w in WORKLOAD_ORDER:
            rs = [r for r in rows if r["target"] == t and r["workload"] == w]
            if not rs:
                continue
            rps = statistics.median(float(r["rps"]) for r in rs)
            p50 = statistics.median(int(r["p50_us"]) for r in rs) / 1000
            p99 = statistics.median(int(r["p99_us"]) for r in rs) / 1000
            errs = sum(int(r["errors"]) for r in rs)
            reqs = sum(int(r["requests"]) for r in rs)
            med[(t, w)] = (rps, p50)
            err_s = f"{errs}/{reqs}"
            lines.append(
                f"{t:<15} {WORKLOAD_NAME.get(w, w):<24} {len(rs):>4} {rps:>10.1f} {p50:>9.2f} {p99:>9.2f} {err_s:>16}"
            )
    lines.append("")
    lines.append("errors = non-2xx responses (HTTP status or X-M2M-RSC) + socket errors, summed over the runs / requests")

    if any(t == "bare" for t in targets):
        lines.append("")
        lines.append("Ratio to bare (req/s target / req/s bare; p50 target / p50 bare):")
        wl = [w for w in WORKLOAD_ORDER if ("bare", w) in med]
        lines.append(f"{'target':<15} " + " ".join(f"{w + ' req/s':>10} {w + ' p50':>8}" for w in wl))
        for t in targets:
            if t == "bare":
                continue
            cells = []
            for w in wl:
                if (t, w) in med and med[("bare", w)][0] > 0:
                    r = med[(t, w)][0] / med[("bare", w)][0]
                    p = med[(t, w)][1] / med[("bare", w)][1] if med[("bare", w)][1] > 0 else float("nan")
                    cells.append(f"{r:>10.4f} {p:>7.1f}x")
                else:
                    cells.append(f"{'-':>10} {'-':>8}")
            lines.append(f"{t:<15} " + " ".join(cells))

    firsts = [r for r in rows if r.get("first_error", "-") not in ("", "-")]
    if firsts:
        lines.append("")
        lines.append("First error seen per run with errors:")
        for r in firsts:
            lines.append(f"  {r['target']} {r['workload']} run {r['run']}: {r['first_error'][:200]}")

    if status:
        lines.append("")
        lines.append("Targets:")
        for s in status:
            lines.append("  " + "  ".join(s))

    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
