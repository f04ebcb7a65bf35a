"""What the peer benchmarks share with `unet benchmark`: the CLI, the U-Net's geometry and FLOP
count, the timing statistics and the JSON result, defined exactly as Sources/SegTrain/Benchmark.swift
defines them so that the numbers of every contestant mean the same thing.

Pure Python (no numpy, torch or tensorflow) so that each peer imports only its own framework.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys

# MARK: - The model (REFERENCE.md: NVIDIA's UNet_Medical)

INPUT_CHANNELS = 1
CLASSES = 2
BASE_FILTERS = 64
DEPTH = 4
UPCONV_KERNEL = 3
DROPOUT = 0.5
PARAMETERS = 34_512_258
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 5e-4
ADAM_EPSILON = 1e-7
DICE_SMOOTHING = 1e-6


def filters(level):
    """Filters at a level (0 = top): 64, 128, 256, 512, 1024."""
    return BASE_FILTERS << level


def geometry(n):
    """(skip sides top first, bottleneck side, output side) for input side n with valid 3x3 convs,
    or None when some side would be odd before a pooling or not positive (UNetConfig.geometry)."""
    skips, s = [], n
    for _ in range(DEPTH):
        s -= 4
        if s <= 0 or s % 2:
            return None
        skips.append(s)
        s //= 2
    s -= 4
    if s <= 0:
        return None
    bottleneck = s
    for level in reversed(range(DEPTH)):
        s = s * 2 - 4
        if s <= 0 or s > skips[level]:
            return None
    return skips, bottleneck, s


def valid_sizes_near(n):
    """The nearest valid input sides below and above n."""
    below = next((m for m in range(n - 1, 0, -1) if geometry(m)), None)
    above = next((m for m in range(n + 1, n + 4097) if geometry(m)), None)
    return [m for m in (below, above) if m]


def forward_macs(n):
    """Multiply-adds of one forward pass of one image of side n, counted as UNetConfig.forwardMACs:
    each conv's output pixels x k*k*in*out, each transposed conv's input pixels x k*k*in*out, the
    1x1 head; pooling, activations, crops and the loss are not counted."""
    side, macs, channels = n, 0, INPUT_CHANNELS

    def conv(cin, cout):
        nonlocal side, macs
        side -= 2
        macs += side * side * 9 * cin * cout

    for level in range(DEPTH):
        conv(channels, filters(level))
        conv(filters(level), filters(level))
        channels = filters(level)
        side //= 2
    conv(channels, filters(DEPTH))
    conv(filters(DEPTH), filters(DEPTH))
    for level in reversed(range(DEPTH)):
        macs += side * side * UPCONV_KERNEL * UPCONV_KERNEL * filters(level + 1) * filters(level)
        side *= 2
        conv(2 * filters(level), filters(level))
        conv(filters(level), filters(level))
    return macs + side * side * BASE_FILTERS * CLASSES


def flops_per_step(mode, n, batch):
    """FLOPs of one step for the whole batch: 2 x MACs, x3 when training (as ours)."""
    forward = 2 * forward_macs(n) * batch
    return 3 * forward if mode == "train" else forward


# MARK: - Command line


def parser(framework, precisions, devices):
    """The CLI shared by the peers, flag for flag as `unet benchmark` where the flag exists there."""
    p = argparse.ArgumentParser(description=f"Time training or inference steps of the reference U-Net in {framework} "
                                "on one random batch, as `unet benchmark` does; writes the same JSON keys.")
    p.add_argument("--mode", choices=["train", "predict"], default="train",
                   help="train (forward, loss, gradients, Adam) or predict (forward + softmax, to the host)")
    p.add_argument("--batch-size", "--batch_size", type=int, default=1, help="images per step")
    p.add_argument("--input-size", type=int, default=572, help="side of the square input tile")
    p.add_argument("--warmup-steps", "--warmup_steps", type=int, default=200, help="untimed steps first")
    p.add_argument("--max-steps", "--max_steps", type=int, default=None,
                   help="all steps, the warm-up included, as the reference's (1000 train, 600 predict)")
    p.add_argument("--device", choices=devices, default="cpu")
    p.add_argument("--precision", choices=precisions, default="fp32")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: OMP_NUM_THREADS, else the cores, as ours)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")
    p.add_argument("--output", help="write the result as one JSON object to this file")
    return p


def check_args(p, args):
    """Validates counts and sizes as ours does; exits with a message that names the flag."""
    if args.max_steps is None:
        args.max_steps = 1000 if args.mode == "train" else 600
    if args.batch_size < 1:
        p.error(f"--batch-size: must be at least 1, got {args.batch_size}")
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps: must be 0 or more, got {args.warmup_steps}")
    if args.max_steps <= args.warmup_steps:
        p.error(f"--max-steps: {args.max_steps} leaves no timed step after --warmup-steps {args.warmup_steps}; "
                "the warm-up counts within --max-steps, as the reference's")
    if geometry(args.input_size) is None:
        near = " or ".join(map(str, valid_sizes_near(args.input_size)))
        p.error(f"--input-size: {args.input_size} does not fit a depth-4 valid U-Net; nearest valid: {near}")
    if args.threads is None:
        args.threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    if args.threads < 1:
        p.error(f"--threads: must be at least 1, got {args.threads}")


def set_thread_environment(threads):
    """Sets the OpenMP/MKL/oneDNN thread variables before a framework is imported."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


# MARK: - Statistics (Benchmark.swift)


def percentile(p, values):
    """Nearest rank: sorted[ceil(p/100 * n) - 1], clamped; 0 for an empty list."""
    if not values:
        return 0.0
    s = sorted(values)
    rank = math.ceil(p / 100 * len(s))
    return s[min(max(rank, 1), len(s)) - 1]


def result(step_seconds, flops, batch, peak_device_mb, config):
    """The JSON object of ours (BenchmarkResult.encode) plus peak_device_mb."""
    total = max(sum(step_seconds), 1e-12)
    count = max(len(step_seconds), 1)
    return {
        "throughput": sum(batch / max(s, 1e-12) for s in step_seconds) / count,
        "throughput_overall": batch * len(step_seconds) / total,
        "latency_mean_ms": 1000 * sum(step_seconds) / count,
        "latency_p50_ms": 1000 * percentile(50, step_seconds),
        "latency_p90_ms": 1000 * percentile(90, step_seconds),
        "latency_p95_ms": 1000 * percentile(95, step_seconds),
        "latency_p99_ms": 1000 * percentile(99, step_seconds),
        "gflops_per_s": flops * len(step_seconds) / total / 1e9,
        "flops_per_step": flops,
        "peak_rss_mb": peak_rss_mb(),
        "peak_device_mb": peak_device_mb,
        "config": config,
        "step_seconds": step_seconds,
    }


def base_config(args, framework, version, device_name, compiled, channels_last, parameters):
    """The config object: the keys of ours (mode, batch_size, ...) and the peers' (framework, batch)."""
    _, _, out = geometry(args.input_size)
    return {
        "framework": framework, "version": version, "device": args.device, "device_name": device_name,
        "precision": args.precision, "compiled": compiled, "channels_last": channels_last,
        "mode": args.mode, "batch": args.batch_size, "batch_size": args.batch_size,
        "input_size": args.input_size, "output_size": out, "threads": args.threads,
        "warmup_steps": args.warmup_steps, "steps": args.max_steps, "parameters": parameters,
        "upconv_kernel": UPCONV_KERNEL, "python": platform.python_version(), "git_commit": git_commit(),
    }


def finish(args, res):
    """Prints the human line and writes the JSON."""
    c = res["config"]
    tags = [c["precision"]] + (["compiled"] if c["compiled"] else []) + (["channels-last"] if c["channels_last"] else [])
    device_mb = f", device peak {res['peak_device_mb']:.0f} MB" if res["peak_device_mb"] is not None else ""
    print(f"{c['framework']} {c['version']} {c['mode']} batch {c['batch']} {c['input_size']}->{c['output_size']} "
          f"on {c['device']} ({c['device_name']}, {c['threads']} threads, {'/'.join(tags)}): "
          f"{res['throughput']:.3f} img/s (overall {res['throughput_overall']:.3f}), "
          f"latency mean {res['latency_mean_ms']:.2f} ms p50 {res['latency_p50_ms']:.2f} p90 {res['latency_p90_ms']:.2f} "
          f"p99 {res['latency_p99_ms']:.2f}, {res['gflops_per_s']:.2f} GFLOP/s, peak RSS {res['peak_rss_mb']:.0f} MB"
          f"{device_mb}", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(res, f, indent=2, sort_keys=True)


# MARK: - Environment


def peak_rss_mb():
    """VmHWM of /proc/self/status in MB (KiB / 1024, as ours); 0 where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_name():
    """The CPU model from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_commit():
    """HEAD of the repository this file is in, or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(os.path.abspath(__file__)),
                             capture_output=True, text=True, timeout=10)
        text = out.stdout.strip()
        return text if out.returncode == 0 and len(text) == 40 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fail(message):
    """Exits with a one-line error."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
