#!/usr/bin/env python3
"""The GPU benchmark table: reads the JSON files that scripts/device-check.sh wrote, named
<contestant>-<mode>-b<batch>-<precision>.json, and prints one markdown table per mode with each
contestant's images/s, mean and p50 latency and peak device memory, and our ratio to the best
PyTorch configuration of the same mode, batch and precision (measured in the same run).

With --precision-dice it prints instead the validation Dice of the fp32, fp16 and bf16 training
runs (precision-dice-<precision>.json, `unet evaluate --output`) and whether fp16 and bf16 come
within 0.005 of fp32 (the mixed-precision target).

Usage: python3 bench/device_table.py [--precision-dice] RESULTS_DIR
"""
import json
import re
import sys
from pathlib import Path

CONTESTANTS = ["ours", "torch-eager", "torch-compile"]
PRECISIONS = ["fp32", "tf32", "fp16", "bf16"]
NAME = re.compile(r"^(?P<who>.+)-(?P<mode>train|predict)-b(?P<batch>\d+)-(?P<precision>\w+)\.json$")


def load(folder):
    """{(mode, batch, precision): {contestant: result}} from the folder's JSON files."""
    table = {}
    for path in sorted(Path(folder).glob("*.json")):
        m = NAME.match(path.name)
        if not m:
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"device_table: skipping {path.name}: {e}", file=sys.stderr)
            continue
        key = (m["mode"], int(m["batch"]), m["precision"])
        table.setdefault(key, {})[m["who"]] = result
    return table


def cell(result, key, digits):
    value = result.get(key) if result else None
    return "-" if value is None else f"{value:.{digits}f}"


def precision_dice(folder, tolerance=0.005):
    """Prints each precision's mean validation Dice and its distance from fp32's."""
    dice = {}
    for precision in ["fp32", "fp16", "bf16"]:
        path = Path(folder) / f"precision-dice-{precision}.json"
        try:
            dice[precision] = json.loads(path.read_text())["mean_dice"]
        except (OSError, json.JSONDecodeError, KeyError) as e:
            print(f"device_table: no Dice for {precision} ({path.name}: {e})")
    if "fp32" not in dice:
        sys.exit("device_table: no fp32 Dice to compare with")
    print(f"validation Dice: fp32 {dice['fp32']:.4f}")
    for precision in ["fp16", "bf16"]:
        if precision in dice:
            gap = dice[precision] - dice["fp32"]
            verdict = "met" if gap >= -tolerance else "missed"
            print(f"validation Dice: {precision} {dice[precision]:.4f} ({gap:+.4f} against fp32; target within {tolerance}: {verdict})")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--precision-dice":
        return precision_dice(sys.argv[2])
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    table = load(sys.argv[1])
    if not table:
        sys.exit(f"device_table: no results in {sys.argv[1]}")
    device = next(
        (r.get("config", {}).get("device_name") for rs in table.values() for r in rs.values() if r.get("config", {}).get("device_name")),
        "the GPU")
    print(f"Images/s at 572x572 on {device} (mean latency and p50 per batch in ms, peak device MiB).\n")
    for mode in ["train", "predict"]:
        keys = sorted((k for k in table if k[0] == mode), key=lambda k: (k[1], PRECISIONS.index(k[2]) if k[2] in PRECISIONS else 9))
        if not keys:
            continue
        print(f"### {mode}\n")
        header = ["batch", "precision"] + [f"{c} img/s" for c in CONTESTANTS] + ["ours / best torch"]
        header += [f"{c} ms (p50)" for c in CONTESTANTS] + ["ours MiB", "torch MiB"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for key in keys:
            rs = table[key]
            ours = rs.get("ours")
            torch = [rs[c] for c in CONTESTANTS[1:] if c in rs and rs[c].get("throughput")]
            best = max((r["throughput"] for r in torch), default=None)
            ratio = f"{ours['throughput'] / best:.2f}x" if ours and ours.get("throughput") and best else "-"
            row = [str(key[1]), key[2]] + [cell(rs.get(c), "throughput", 1) for c in CONTESTANTS] + [ratio]
            row += [f"{cell(rs.get(c), 'latency_mean_ms', 1)} ({cell(rs.get(c), 'latency_p50_ms', 1)})" for c in CONTESTANTS]
            torch_mem = [r.get("peak_device_mb") for r in torch if r.get("peak_device_mb") is not None]
            row += [cell(ours, "peak_device_mb", 0), f"{min(torch_mem):.0f}" if torch_mem else "-"]
            print("| " + " | ".join(row) + " |")
        print()


if __name__ == "__main__":
    main()
