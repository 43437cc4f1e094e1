"""The tables of README.md from the report directories beside this file and yardstick.json.

    python3 experiments/results/memorization/summarize.py > experiments/results/memorization/tables.md
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
REPORTS = {"shipped": "shipped (all 60,000)", "fair_n500_seed0": "fair n = 500, seed 0",
           "fair_n100_seed0": "fair n = 100, seed 0", "fair_n10_seed0": "fair n = 10, seed 0",
           "fair_lt100_seed0": "fair long-tailed rho = 100, seed 0"}


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> None:
    lines = ["| generator | training images | C_T pixels | authenticity (held-out real) | near duplicates | "
             "C_T features | audit s (CPU s) | verdict |", "|" + "---|" * 8]
    audits = {}
    for name, label in REPORTS.items():
        path = HERE / name / "results.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text())["memorization"]
        audits[name] = m
        lines.append(f"| {label} | {m['training']['images']:,} | {fmt(m['ct'], 1)} | {fmt(m['authenticity'])} "
                     f"({fmt(m['held_out_authenticity'])}) | {fmt(100 * m['near_duplicate_fraction'], 1)}% | "
                     f"{fmt(m['features']['ct'], 1)} | {fmt(m['seconds'], 1)} ({fmt(m.get('cpu_seconds'), 1)}) | "
                     f"{m['verdict']} |")
    print("\n".join(lines))
    if "fair_lt100_seed0" in audits:
        m = audits["fair_lt100_seed0"]
        per = m["per_class"]
        counts = [5000, 2997, 1797, 1077, 646, 387, 232, 139, 83, 50]  # long_tail_counts(10, 100)
        print("\nFair long-tailed generator (rho = 100, seed 0), per class:\n")
        print("| class | training images | C_T pixels | authenticity (held-out real) | near duplicates | "
              "C_T features |")
        print("|" + "---|" * 6)
        for c in range(10):
            print(f"| {c} | {counts[c]:,} | {fmt(per['ct'][c], 1)} | {fmt(per['authenticity'][c])} "
                  f"({fmt(per['held_out_authenticity'][c])}) | {fmt(100 * per['near_duplicate_fraction'][c], 1)}% | "
                  f"{fmt(m['features']['per_class']['ct'][c], 1)} |")
    for name in ("fair_n10_seed0", "fair_n100_seed0"):
        if name in audits:
            near = audits[name]["per_class"]["near_duplicate_fraction"]
            print(f"\n{REPORTS[name]}: near duplicates per class (%): "
                  + ", ".join(f"{c}: {100 * v:.0f}" for c, v in enumerate(near)))
    yardstick = HERE / "yardstick.json"
    if yardstick.is_file():
        rows = json.loads(yardstick.read_text())
        print("\nYardstick: real images that are not training images, in pixels, held-out = MNIST test:\n")
        print("| training set: judged images | C_T pixels | authenticity (held-out real) | near duplicates | CPU s |")
        print("|" + "---|" * 5)
        for name, r in rows.items():
            print(f"| {name} | {fmt(r['ct'], 1)} | {fmt(r['authenticity'])} ({fmt(r['held_out_authenticity'])}) | "
                  f"{fmt(100 * r['near_duplicate_fraction'], 1)}% | {r['cpu_seconds']} |")
        if "per_class" in rows.get("lt100 seed 0: unseen train-split images", {}):
            per = rows["lt100 seed 0: unseen train-split images"]["per_class"]
            ct = ", ".join(f"{c}: {fmt(v, 1)}" for c, v in enumerate(per["ct"]))
            near = ", ".join(f"{c}: {100 * v:.1f}" for c, v in enumerate(per["near_duplicate_fraction"]))
            print(f"\nlt100 yardstick per class, C_T: {ct}; near duplicates (%): {near}")


if __name__ == "__main__":
    main()
