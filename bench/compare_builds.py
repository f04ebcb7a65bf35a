#!/usr/bin/env python3
"""Two builds of `unet` side by side on the CPU: the same `unet benchmark` configurations run
alternately (A, B, A, B, ...), so that a change's speed and memory are measured against the build
before it in one run, under the same machine load. Prints a table of throughput and peak RSS with
the ratio B/A and writes everything as JSON.

    python3 bench/compare_builds.py BEFORE/unet AFTER/unet --configs train:1,predict:1 --rounds 2 [--xla]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_name, fail  # noqa: E402


def isa_flags():
    """The vector extensions of this processor that matter to the kernels (AVX2, AVX-512, BF16)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"]
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def run(binary, mode, batch, a, output):
    warmup, steps = (a.train_warmup, a.train_steps) if mode == "train" else (a.predict_warmup, a.predict_steps)
    cmd = [binary, "benchmark", "--device", "cpu", "--mode", mode, "--batch-size", str(batch),
           "--input-size", str(a.input_size), "--warmup-steps", str(warmup), "--max-steps", str(steps),
           "--output", output] + (["--xla"] if a.xla else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    with open(output) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="the build before (path to unet)")
    p.add_argument("b", help="the build after (path to unet)")
    p.add_argument("--configs", default="train:1,predict:1", help="mode:batch pairs (train:1,predict:1)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (2)")
    p.add_argument("--input-size", type=int, default=572, help="tile side (572)")
    p.add_argument("--train-steps", type=int, default=5, help="training steps per run, warm-up included (5)")
    p.add_argument("--train-warmup", type=int, default=2,
                   help="untimed training steps (2: a second step still fills the buffer pool and the compiled step's arena)")
    p.add_argument("--predict-steps", type=int, default=5, help="inference steps per run, warm-up included (5)")
    p.add_argument("--predict-warmup", type=int, default=1, help="untimed inference steps (1)")
    p.add_argument("--xla", action="store_true", help="run both builds' compiled step (--xla)")
    p.add_argument("--output", help="JSON file for the results")
    a = p.parse_args()
    for binary in (a.a, a.b):
        if not os.access(binary, os.X_OK):
            fail(f"{binary} is not an executable; build it with `swift build -c release --product unet`")

    configs = [(m, int(b)) for m, b in (c.split(":") for c in a.configs.split(","))]
    runs = {f"{m}:{b}": {"a": [], "b": []} for m, b in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for mode, batch in configs:
                for side in ("a", "b"):
                    res = run(getattr(a, side), mode, batch, a, os.path.join(tmp, "out.json"))
                    runs[f"{mode}:{batch}"][side].append(res)
                    print(f"round {r + 1} {mode}:{batch} {side}: {res['throughput']:.3f} img/s, "
                          f"peak RSS {res.get('peak_rss_mb', 0):.0f} MB", flush=True)

    rows = []
    step = "compiled (--xla)" if a.xla else "eager"
    print(f"\n{cpu_name()} ({', '.join(isa_flags()) or 'no AVX2'}), {a.input_size}x{a.input_size}, {step}, {a.rounds} rounds")
    print("config       A img/s   B img/s   B/A    A RSS MB  B RSS MB")
    for key, sides in runs.items():
        ta = statistics.mean(x["throughput"] for x in sides["a"])
        tb = statistics.mean(x["throughput"] for x in sides["b"])
        ra = max(x.get("peak_rss_mb", 0) for x in sides["a"])
        rb = max(x.get("peak_rss_mb", 0) for x in sides["b"])
        rows.append({"config": key, "a_throughput": ta, "b_throughput": tb, "ratio": tb / ta,
                     "a_peak_rss_mb": ra, "b_peak_rss_mb": rb,
                     "a_runs": [x["throughput"] for x in sides["a"]], "b_runs": [x["throughput"] for x in sides["b"]]})
        print(f"{key:<12} {ta:8.3f}  {tb:8.3f}  {tb / ta:5.2f}x  {ra:8.0f}  {rb:8.0f}")
    if a.output:
        with open(a.output, "w") as f:
            json.dump({"cpu": cpu_name(), "isa": isa_flags(), "a": a.a, "b": a.b, "rounds": a.rounds,
                       "input_size": a.input_size, "compiled": a.xla, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
