#!/usr/bin/env python3
"""Checks soak's rows in a peers-lab run against the scale-and-speed goals; exit 1 on a miss.

    python3 scripts/peers-goals.py LAB_DIR

Reads LAB_DIR/results/summary.md (the lab's summarizer), co_truth.json, and soak's own
summary.json files. A goal whose scenario was not run is reported as skipped, not passed.
"""
import glob
import json
import sys

A_KIB_PER_CONN = 12.0  # A, A15k, A19k: peak RSS / connections
B_CPU_MS_PER_1K = 90.0  # steady window
B_FLOOR_FACTOR = 1.25  # within 1.25x of the floor client
C_TOLERANCE = 0.05  # p95 and p99 within 5 % of the open-model truth
D_K6_FACTOR = 2.0  # msg/s at least 2x k6's


def rows(lab):
    """Every table row of summary.md as a dict keyed by its table's header."""
    out, header = [], None
    for line in open(f"{lab}/results/summary.md"):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "scenario":
            header = cells
        elif header and not cells[0].startswith("---"):
            out.append(dict(zip(header, cells)))
    return out


def main(lab):
    table = rows(lab)
    get = lambda scen, tool: next((r for r in table if r["scenario"] == scen and r["tool"] == tool), None)
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL' if ok is False else 'skip'}  {name}: {detail}")

    for scen, conns in [("A", 1000), ("A15k", 15000), ("A19k", 19000)]:
        r = get(scen, "soak")
        if r is None:
            check(scen, None, "not run")
            continue
        kib, opened = float(r["RSS/conn KiB"]), int(r["conns open"])
        check(scen, kib <= A_KIB_PER_CONN and opened == conns,
              f"{kib} KiB/conn (goal <= {A_KIB_PER_CONN}), {opened} of {conns} open")

    b = get("B", "soak")
    if b is None:
        check("B", None, "not run")
    else:
        cost = float(b["CPU-ms/1k (steady)"])
        peers = {t: float(r["CPU-ms/1k (steady)"]) for t in ("k6", "artillery", "locust")
                 if (r := get("B", t))}
        floor = get("B", "floor")
        ok = cost <= B_CPU_MS_PER_1K and all(cost < p for p in peers.values())
        detail = f"{cost} CPU-ms/1k (goal <= {B_CPU_MS_PER_1K}); peers {peers or 'not run'}"
        if floor:
            f = float(floor["CPU-ms/1k (steady)"])
            ok = ok and cost <= B_FLOOR_FACTOR * f
            detail += f"; floor {f} ({cost / f:.2f}x, goal <= {B_FLOOR_FACTOR}x)"
        check("B", ok, detail)

    late = glob.glob(f"{lab}/results/late/soak_C_*_late.out/*/summary.json")
    at_once = glob.glob(f"{lab}/results/raw/soak_C_*.out/*/summary.json")
    c = late or at_once
    if not c:
        check("C", None, "not run")
    else:
        truth = json.load(open(f"{lab}/results/co_truth.json"))["open_model_truth"]
        lat = json.load(open(c[0]))["latency_ms"]["run"]
        errs = {q: lat[q] / truth[q] - 1 for q in ("p95", "p99")}
        check("C" + (" (C-late)" if late else ""),
              all(abs(e) <= C_TOLERANCE for e in errs.values()),
              ", ".join(f"{q} {lat[q]:.1f} vs truth {truth[q]} ({e:+.1%})" for q, e in errs.items()))

    d, k6 = get("D", "soak"), get("D", "k6")
    if d is None or k6 is None:
        check("D", None, "soak or k6 not run (PEERS=1 runs k6)")
    else:
        ratio = float(d["msg/s"]) / float(k6["msg/s"])
        check("D", ratio >= D_K6_FACTOR, f"{d['msg/s']} msg/s, {ratio:.2f}x k6's {k6['msg/s']} "
              f"(goal >= {D_K6_FACTOR}x)")

    summaries = glob.glob(f"{lab}/results/raw/soak_*.out/*/summary.json") + late
    dropped = {p.split("/")[-3]: json.load(open(p))["totals"]["dropped_samples"] for p in summaries}
    check("dropped samples", all(v == 0 for v in dropped.values()) if dropped else None,
          ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "no soak run")

    return 1 if False in results else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
