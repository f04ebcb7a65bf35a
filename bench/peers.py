#!/usr/bin/env python3
"""Ours and the peers side by side on the CPU: the reference U-Net's training step at batch
1 and inference at batch 1 and 2, 572x572, in `unet benchmark`, PyTorch (eager and torch.compile)
and TensorFlow/Keras (tf.function and XLA), with the same thread count, each run a separate process,
the contestants alternated round-robin over the rounds so that machine noise hits all alike. Also
measures the machine's sgemm ceiling (numpy float32 4096^3) and reports each contestant's fraction.

  python3 bench/peers.py [--quick] [--rounds R] [--threads T] [--write-md]

Not part of CI: it makes a virtual environment outside the repository (torch, tensorflow-cpu, numpy;
several GB) and takes 30 to 40 minutes on a quiet 2-core machine (--quick: about 6, at tile 188).
Raw JSON and logs go to --results (default ~/.cache/unetseg/bench-results/<UTC time>/); --write-md
rewrites the matching section of BENCHMARKS.md with the table, date, commit, machine and command.
Standard library only: it runs with any python3 >= 3.9.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.dont_write_bytecode = True  # no __pycache__ beside the tracked files
sys.path.insert(0, BENCH)
import common  # noqa: E402

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "unetseg")

# Every contestant. PyTorch's layout is its user's choice and changes the winner (on a 2-core AVX2
# EPYC at 572, channels-last halves eager inference time but nearly doubles a training step's), so
# both layouts compete by default.
CONTESTANTS = {
    "ours": "unet benchmark (oneDNN, Swift)",
    "ours-xla": "unet benchmark --xla (the compiled step: traced once, replayed from a planned arena)",
    "torch": "PyTorch eager",
    "torch-cl": "PyTorch eager, channels-last",
    "torch-compile": "PyTorch torch.compile (inductor)",
    "torch-compile-cl": "PyTorch torch.compile, channels-last",
    "tf": "TensorFlow/Keras tf.function",
    "tf-jit": "TensorFlow/Keras jit_compile=True (XLA)",
    # bf16 where the processor has AVX-512 BF16: ours through oneDNN, PyTorch's CPU autocast.
    "ours-bf16": "unet benchmark --precision bf16",
    "ours-xla-bf16": "unet benchmark --xla --precision bf16",
    "torch-bf16": "PyTorch eager, autocast bf16",
    "torch-cl-bf16": "PyTorch eager, channels-last, autocast bf16",
}
DEFAULT_CONTESTANTS = ["ours", "torch", "torch-cl", "torch-compile", "tf", "tf-jit"]

# MARK: - Command line


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="validation run: tile 188, 1 warm-up + 2 timed steps, 2 rounds (numbers not comparable to 572)")
    p.add_argument("--rounds", type=int, help="rounds over all contestants (2)")
    p.add_argument("--input-size", type=int, help="tile side (572; 188 with --quick)")
    p.add_argument("--train-steps", type=int, help="training steps per run, the warm-up included (5; 3 with --quick)")
    p.add_argument("--train-warmup", type=int,
                   help="untimed training steps per run (2: a second step still fills the buffer pool and the "
                        "compiled step's arena, 20-30%% slower than later ones; 1 with --quick)")
    p.add_argument("--predict-steps", type=int, help="inference steps per run, the warm-up included (5; 3 with --quick)")
    p.add_argument("--predict-warmup", type=int, default=1, help="untimed inference steps per run (1)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of every contestant (the cores)")
    p.add_argument("--contestants", default=",".join(DEFAULT_CONTESTANTS),
                   help=f"comma-separated, from {', '.join(CONTESTANTS)} (default {','.join(DEFAULT_CONTESTANTS)})")
    p.add_argument("--configs", default="train:1,predict:1,predict:2", help="mode:batch pairs (train:1,predict:1,predict:2)")
    p.add_argument("--venv", default=os.path.join(CACHE, "bench-venv"), help="the peers' virtual environment (made if missing)")
    p.add_argument("--torch-wheel", help="a torch wheel file or requirement to install (default: a +cpu wheel in pip's "
                   "find-links if there is one, else 'torch' from the index)")
    p.add_argument("--torch-index-url", help="extra index URL for torch (a CPU-only wheel index), if this machine reaches one")
    p.add_argument("--results", help="folder for the raw JSON and logs (default ~/.cache/unetseg/bench-results/<UTC time>)")
    p.add_argument("--skip-build", action="store_true", help="use the release build as it is")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one run may take before it counts as failed")
    p.add_argument("--write-md", action="store_true", help="rewrite the run's section of BENCHMARKS.md")
    a = p.parse_args()
    a.rounds = a.rounds or 2
    a.input_size = a.input_size or (188 if a.quick else 572)
    a.train_steps = a.train_steps or (3 if a.quick else 5)
    a.train_warmup = a.train_warmup if a.train_warmup is not None else (1 if a.quick else 2)
    a.predict_steps = a.predict_steps or (3 if a.quick else 5)
    a.contestants = [c.strip() for c in a.contestants.split(",") if c.strip()]
    unknown = [c for c in a.contestants if c not in CONTESTANTS]
    if unknown:
        p.error(f"--contestants: unknown {', '.join(unknown)}; known: {', '.join(CONTESTANTS)}")
    try:
        a.configs = [(m, int(b)) for m, b in (c.split(":") for c in a.configs.split(","))]
    except ValueError:
        p.error("--configs: expected mode:batch pairs such as train:1,predict:2")
    if any(m not in ("train", "predict") or b < 1 for m, b in a.configs):
        p.error("--configs: modes are train or predict, batches at least 1")
    if common.geometry(a.input_size) is None:
        p.error(f"--input-size: {a.input_size} does not fit; nearest valid: {common.valid_sizes_near(a.input_size)}")
    if a.train_steps <= a.train_warmup or a.predict_steps <= a.predict_warmup:
        p.error("the steps of a run include its warm-up: --train-steps/--predict-steps must exceed the warm-up")
    return a


def log(msg):
    print(f"[{datetime.datetime.now(datetime.timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw):
    """Runs a command, echoing it; raises on failure."""
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


# MARK: - Setup


def venv_python(a):
    return os.path.join(a.venv, "bin", "python")


def setup_venv(a):
    """Makes the virtual environment with what the contestants need unless it imports: numpy (the
    sgemm ceiling), torch for PyTorch's, tensorflow-cpu for TensorFlow's."""
    py = venv_python(a)
    wants_torch = any(who.startswith("torch") for who in a.contestants)
    wants_tf = any(who.startswith("tf") for who in a.contestants)
    probe = "import numpy" + (", torch" if wants_torch else "") + (", tensorflow, keras" if wants_tf else "")
    if os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0:
        return
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", a.venv])
    pip = [py, "-m", "pip", "install", "--quiet"]
    if wants_torch and subprocess.run([py, "-c", "import torch"], capture_output=True).returncode != 0:
        torch = a.torch_wheel or local_cpu_torch_wheel() or "torch"
        run(pip + (["--extra-index-url", a.torch_index_url] if a.torch_index_url else []) + [torch])
    run(pip + (["tensorflow-cpu"] if wants_tf else []) + ["numpy"])
    subprocess.run([py, "-c", probe], check=True)


def local_cpu_torch_wheel():
    """A torch +cpu wheel for this Python in pip's find-links folders: PyPI's Linux torch is a CUDA
    build (gigabytes of CUDA libraries) and a newer one would win over a local CPU wheel."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    dirs = re.findall(r"find-links='([^']+)'", out) + os.environ.get("PIP_FIND_LINKS", "").split()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted(w for d in dirs for w in glob.glob(os.path.join(d, f"torch-*+cpu-{tag}-*.whl")))
    return wheels[-1] if wheels else None


def build_ours(a):
    """Builds `unet` in release and returns the binary's path."""
    if not a.skip_build:
        run(["swift", "build", "-c", "release", "--product", "unet"], cwd=REPO)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()
    path = os.path.join(bin_dir, "unet")
    if not os.path.exists(path):
        sys.exit(f"error: {path} is missing; build it with swift build -c release --product unet (or drop --skip-build)")
    return path


SGEMM = """
import time, numpy as np
n = 4096
a = np.random.default_rng(0).random((n, n), dtype=np.float32)
b = np.random.default_rng(1).random((n, n), dtype=np.float32)
a @ b


def seconds():
    start = time.perf_counter()
    a @ b
    return time.perf_counter() - start


print(2 * n ** 3 / min(seconds() for _ in range(REPEATS)) / 1e9)
"""


def sgemm_ceiling(a, env):
    """The best GFLOP/s of a numpy float32 4096^3 matmul with the contestants' threads."""
    script = SGEMM.replace("REPEATS", "3" if a.quick else "5")
    out = subprocess.run([venv_python(a), "-c", script], env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def thread_env(threads):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# MARK: - Runs


def command(a, who, unet, mode, batch, output):
    warmup, steps = (a.train_warmup, a.train_steps) if mode == "train" else (a.predict_warmup, a.predict_steps)
    shared = ["--mode", mode, "--batch-size", str(batch), "--input-size", str(a.input_size),
              "--warmup-steps", str(warmup), "--max-steps", str(steps), "--output", output]
    if who.endswith("-bf16"):
        who, shared = who[:-len("-bf16")], shared + ["--precision", "bf16"]
    if who in ("ours", "ours-xla"):
        return [unet, "benchmark", "--device", "cpu"] + shared + (["--xla"] if who == "ours-xla" else [])
    py = venv_python(a)
    if who.startswith("torch"):
        extra = {"torch": [], "torch-cl": ["--channels-last"], "torch-compile": ["--compile"],
                 "torch-compile-cl": ["--compile", "--channels-last"]}[who]
        return [py, os.path.join(BENCH, "torch_unet.py")] + shared + ["--device", "cpu", "--threads", str(a.threads)] + extra
    extra = ["--jit-compile"] if who == "tf-jit" else []
    return [py, os.path.join(BENCH, "tf_unet.py")] + shared + ["--threads", str(a.threads)] + extra


def run_all(a, unet, env, results):
    """Every (round, configuration, contestant) in round-robin order, the contestants' order rotated
    each round, the sgemm ceiling measured before each round and after the last (its best counts:
    a busy moment lowers a measurement, nothing raises it); returns {(who, mode, batch): [result JSON
    of each round]}, the failures and the ceiling measurements."""
    runs, failures, ceilings = {}, [], []
    total = a.rounds * len(a.configs) * len(a.contestants)
    done, started = 0, time.time()
    for r in range(a.rounds):
        ceilings.append(sgemm_ceiling(a, env))
        log(f"sgemm: {ceilings[-1]:.1f} GFLOP/s ({a.threads} threads)")
        order = a.contestants[r % len(a.contestants):] + a.contestants[:r % len(a.contestants)]
        for mode, batch in a.configs:
            for who in order:
                name = f"{who}_{mode}_b{batch}_r{r}"
                out, logfile = os.path.join(results, name + ".json"), os.path.join(results, name + ".log")
                cmd = command(a, who, unet, mode, batch, out)
                t0 = time.time()
                try:
                    with open(logfile, "w") as f:
                        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
                        f.flush()
                        subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=a.timeout, cwd=REPO)
                    with open(out) as f:
                        res = json.load(f)
                    runs.setdefault((who, mode, batch), []).append(res)
                    status = f"{res['throughput']:.3f} img/s, {res['latency_mean_ms']:.0f} ms"
                except (subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
                    failures.append((name, str(e).splitlines()[0] if str(e) else type(e).__name__, logfile))
                    status = f"FAILED ({failures[-1][1]}; see {logfile})"
                done += 1
                elapsed = time.time() - started
                log(f"{done}/{total} {name}: {status} in {time.time() - t0:.0f} s; about "
                    f"{elapsed / done * (total - done) / 60:.0f} min left")
    ceilings.append(sgemm_ceiling(a, env))
    log(f"sgemm: {ceilings[-1]:.1f} GFLOP/s ({a.threads} threads)")
    return runs, failures, ceilings


def combine(results, mode, batch, input_size):
    """One result from several rounds: the timed steps pooled, the statistics recomputed with the
    definitions of ours; peak RSS the largest."""
    seconds = [s for r in results for s in r["step_seconds"]]
    flops = common.flops_per_step(mode, input_size, batch)
    device = [r.get("peak_device_mb") for r in results if r.get("peak_device_mb") is not None]
    c = common.result(seconds, flops, batch, max(device) if device else None, results[0]["config"])
    c["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    c["round_throughputs"] = [r["throughput"] for r in results]
    return c


def check_flops(runs, a):
    """Ours reports its own GFLOP/s: it must match the peers' count (bench/common.py) to 1e-6."""
    for (who, mode, batch), results in runs.items():
        if who != "ours":
            continue
        for r in results:
            mine = common.flops_per_step(mode, a.input_size, batch) * len(r["step_seconds"]) / sum(r["step_seconds"]) / 1e9
            if abs(mine - r["gflops_per_s"]) > 1e-6 * max(mine, 1):
                log(f"warning: ours reports {r['gflops_per_s']:.4f} GFLOP/s for {mode} batch {batch}, the shared "
                    f"FLOP count gives {mine:.4f}: the definitions differ")


# MARK: - Report


def label(mode, batch):
    return f"{'training' if mode == 'train' else 'inference'}, batch {batch}"


def pooled(a, runs):
    """{(mode, batch): {who: pooled result}} over the runs that succeeded."""
    return {(mode, batch): {who: combine(runs[(who, mode, batch)], mode, batch, a.input_size)
                            for who in a.contestants if (who, mode, batch) in runs}
            for mode, batch in a.configs}


def best_peer(rows):
    """(name, result) of the peer (not ours) with the most images/s, or (None, None)."""
    peers = [(who, r) for who, r in rows.items() if not who.startswith("ours")]
    return max(peers, key=lambda p: p[1]["throughput"], default=(None, None))


def table(a, pools, ceiling):
    """The markdown table: one block of rows per configuration, its best images/s in bold."""
    lines = ["| run | contestant | images/s | mean latency (ms) | GFLOP/s | of sgemm | peak RSS (MB) "
             "| vs best peer (img/s) | RSS vs lowest peer |", "|" + "---|" * 9]
    for (mode, batch), rows in pools.items():
        _, best = best_peer(rows)
        lowest = min((r["peak_rss_mb"] for who, r in rows.items() if not who.startswith("ours")), default=None)
        top = max((r["throughput"] for r in rows.values()), default=None)
        for who in a.contestants:
            if who not in rows:
                lines.append(f"| {label(mode, batch)} | {who} | failed | | | | | | |")
                continue
            r = rows[who]
            ips = f"{r['throughput']:.3f}"
            cells = [label(mode, batch), who, f"**{ips}**" if r["throughput"] == top else ips,
                     f"{r['latency_mean_ms']:.0f}", f"{r['gflops_per_s']:.1f}", f"{100 * r['gflops_per_s'] / ceiling:.0f}%",
                     f"{r['peak_rss_mb']:.0f}", f"{r['throughput'] / best['throughput']:.2f}x" if best else "",
                     f"{r['peak_rss_mb'] / lowest:.2f}x" if lowest else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(pools, ceiling):
    """The CPU targets, each met or missed and by how much: inference >= 1.0x the best peer at >= 70%
    of sgemm, training >= 1.0x the best peer with a peak RSS <= the lowest peer's."""
    out = []
    for (mode, batch), rows in pools.items():
        ours = rows.get("ours")
        name, best = best_peer(rows)
        if ours is None or best is None:
            out.append(f"- {label(mode, batch)}: no verdict (ours or every peer failed)")
            continue
        ratio = ours["throughput"] / best["throughput"]
        parts = [f"{ratio:.2f}x the best peer ({name}), target >= 1.0x: {'met' if ratio >= 1 else 'missed'}"]
        if mode == "predict":
            frac = ours["gflops_per_s"] / ceiling
            parts.append(f"{100 * frac:.0f}% of sgemm, target >= 70%: {'met' if frac >= 0.7 else 'missed'}")
        else:
            lowest = min(r["peak_rss_mb"] for who, r in rows.items() if not who.startswith("ours"))
            parts.append(f"peak RSS {ours['peak_rss_mb']:.0f} MB vs the lowest peer's {lowest:.0f} MB, target <=: "
                         f"{'met' if ours['peak_rss_mb'] <= lowest else 'missed'}")
        if "ours-xla" in rows:
            compiled = rows["ours-xla"]["throughput"] / ours["throughput"]
            target = 1.15 if mode == "train" else 1.05
            parts.append(f"compiled {compiled:.2f}x our eager, target >= {target}x: {'met' if compiled >= target else 'missed'}")
        if "ours-bf16" in rows:
            bf16 = rows["ours-bf16"]["throughput"] / ours["throughput"]
            parts.append(f"bf16 {bf16:.2f}x our fp32, target >= 1.5x: {'met' if bf16 >= 1.5 else 'missed'}")
        out.append(f"- {label(mode, batch)}: ours " + "; ".join(parts))
    return "\n".join(out)


def machine(a, runs):
    """What the numbers were measured on, for BENCHMARKS.md."""
    def first(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            return None

    versions = {}
    for (who, _, _), results in runs.items():
        c = results[0]["config"]
        if who.startswith("torch"):
            versions["PyTorch"] = f"{c.get('version')} (oneDNN {c.get('onednn')})"
        elif who.startswith("tf"):
            versions["TensorFlow"] = f"{c.get('version')} (Keras {c.get('keras')}, oneDNN opts {c.get('onednn_opts')})"
    mem = first(["awk", "/MemTotal/ {printf \"%.0f GiB\", $2/1048576}", "/proc/meminfo"])
    return {
        "CPU": f"{common.cpu_name()}, {os.cpu_count()} cores visible, {a.threads} threads per contestant",
        "memory": mem,
        "OS": f"{platform.system()} {platform.release()}",
        "ours": f"{first(['swift', '--version']) or 'swift ?'}; oneDNN {first(['dpkg-query', '-W', '-f', '${Version}', 'libdnnl2']) or '?'} (Debian libdnnl2)",
        **versions,
        "numpy (sgemm)": first([venv_python(a), "-c", "import numpy; print(numpy.__version__)"]),
    }


def git_state():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def markdown_section(a, report, ceilings, info, argv, failures, started):
    kind = "quick" if a.quick else "full"
    title = ("Validation run (`--quick`: tile 188, not the 572 targets)" if a.quick
             else f"Latest full run ({a.input_size}x{a.input_size})")
    lines = [f"<!-- peers:{kind}:begin -->", f"## {title}", "",
             f"- date: {started} UTC; commit `{git_state()}`",
             f"- command: `{' '.join(shlex.quote(x) for x in argv)}`",
             f"- tile {a.input_size}x{a.input_size}; training: {a.train_warmup} warm-up + {a.train_steps - a.train_warmup} timed "
             f"steps; inference: {a.predict_warmup} warm-up + {a.predict_steps - a.predict_warmup} timed steps; "
             f"{a.rounds} round(s), contestants alternated; every run a fresh process",
             f"- sgemm ceiling (numpy float32 4096^3, {a.threads} threads, best of 3-5 products, measured before each "
             f"round and after the last): {max(ceilings):.1f} GFLOP/s (measurements: "
             f"{', '.join(f'{c:.1f}' for c in ceilings)})"]
    lines += [f"- {k}: {v}" for k, v in info.items() if v]
    lines += ["", report, ""]
    if failures:
        lines += ["Failed runs: " + "; ".join(f"{n} ({why})" for n, why, _ in failures), ""]
    lines.append(f"<!-- peers:{kind}:end -->")
    return "\n".join(lines)


def write_md(section, kind):
    """Replaces the run kind's marked section of BENCHMARKS.md (appends it when missing)."""
    path = os.path.join(REPO, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- peers:{kind}:begin -->.*?<!-- peers:{kind}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    log(f"wrote {path}")


# MARK: - Main


def main():
    argv = ["python3", "bench/peers.py"] + sys.argv[1:]
    a = parse()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results = a.results or os.path.join(CACHE, "bench-results", stamp + ("-quick" if a.quick else ""))
    os.makedirs(results, exist_ok=True)
    log(f"results in {results}")
    setup_venv(a)  # numpy for the sgemm ceiling, whoever competes
    unet = build_ours(a) if any(who.startswith("ours") for who in a.contestants) else None
    env = thread_env(a.threads)
    runs, failures, ceilings = run_all(a, unet, env, results)
    ceiling = max(ceilings)
    check_flops(runs, a)
    pools = pooled(a, runs)
    scope = f" (judged at tile {a.input_size}: a validation of the runner, not the targets' 572)" if a.input_size != 572 else ""
    report = table(a, pools, ceiling) + f"\n\nTargets of the CPU comparison{scope}:\n" + verdicts(pools, ceiling)
    info = machine(a, runs)
    section = markdown_section(a, report, ceilings, info, argv, failures, started)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(section + "\n")
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"sgemm_gflops": ceiling, "sgemm_measurements": ceilings, "machine": info, "argv": argv, "failures": failures,
                   "combined": {f"{w}_{m}_b{b}": r for (m, b), rows in pools.items() for w, r in rows.items()}},
                  f, indent=2)
    print("\n" + section)
    if a.write_md:
        write_md(section, "quick" if a.quick else "full")
    if failures:
        log(f"{len(failures)} run(s) failed: " + ", ".join(n for n, _, _ in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
