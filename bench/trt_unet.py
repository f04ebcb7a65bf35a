#!/usr/bin/env python3
"""TensorRT beside ours: builds a TensorRT engine from an ONNX model that `unet export` wrote (fp16:
`--precision fp16`, and `--softmax` so that both sides give probabilities), times inference at each
batch size beside `unet benchmark --mode predict` on the same card in the same run (ours first,
then TensorRT, per batch size), and compares the two on one image: the largest absolute difference
of the class probabilities, TensorRT's against `unet predict --probabilities` on the checkpoint the
ONNX model was exported from. Writes one JSON object.

    python3 bench/trt_unet.py --onnx model.onnx --model-dir run --unet path/to/unet --output trt.json

`--runtime onnxruntime` runs the same steps through ONNX Runtime's CPU provider instead of TensorRT
and `--device cpu` runs ours on the CPU: the stand-in that machines without a GPU run (the tests do),
which checks everything but TensorRT itself.

Both sides time the same step: a batch already in device memory through the network and the
softmax, with the probabilities copied to the host. Ours takes the model's shape from the ONNX
model's metadata (`unet.config`), so that both time the same network.
"""

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, percentile  # noqa: E402

# MARK: - The ONNX file's metadata


def read_varint(data, i):
    """A protobuf varint at i: (value, next index)."""
    value = shift = 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def fields(data):
    """The (field number, wire type, value) of a protobuf message's top-level fields."""
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 2:
            length, i = read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {i}")
        yield number, wire, value


def onnx_metadata(path):
    """ModelProto.metadata_props (field 14: key 1, value 2) as a dict, read without the onnx package."""
    meta = {}
    for number, wire, value in fields(Path(path).read_bytes()):
        if number == 14 and wire == 2:
            entry = {n: v.decode() for n, w, v in fields(value) if w == 2}
            meta[entry.get(1, "")] = entry.get(2, "")
    return meta


def model_flags(meta):
    """`unet benchmark`'s model flags for the exported model's configuration."""
    c = json.loads(meta["unet.config"])
    return ["--input-size", str(c["inputSize"]), "--base-filters", str(c["baseFilters"]), "--depth", str(c["depth"]),
            "--padding", c["padding"], "--upconv-kernel", str(c["upconvKernel"]), "--classes", str(c["classes"]),
            "--input-channels", str(c["inputChannels"])]


# MARK: - Images (our own formats: 8-bit gray PNG out, our 16-bit TIFF in)


def write_gray_png(path, pixels, width, height):
    """An 8-bit grayscale PNG of `pixels` (row-major bytes)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def read_tiff_pages(path):
    """The pages of an uncompressed little-endian 16-bit TIFF as `unet predict --probabilities` writes
    it: a list of (width, height, samples)."""
    data = Path(path).read_bytes()
    if data[:4] != b"II*\x00":
        raise ValueError(f"{path}: not a little-endian TIFF")
    pages, ifd = [], struct.unpack_from("<I", data, 4)[0]
    while ifd:
        count = struct.unpack_from("<H", data, ifd)[0]
        tags = {}
        for e in range(count):
            tag, kind, n, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * e)
            if kind == 3 and n == 1:
                value &= 0xFFFF
            elif n > 1:
                value = list(struct.unpack_from("<" + ("H" if kind == 3 else "I") * n, data, value))
            tags[tag] = value
        if tags.get(259, 1) != 1 or tags.get(258) != 16:
            raise ValueError(f"{path}: expected uncompressed 16-bit pages")
        offsets, sizes = tags[273], tags[279]
        offsets, sizes = (offsets, sizes) if isinstance(offsets, list) else ([offsets], [sizes])
        raw = b"".join(data[o:o + s] for o, s in zip(offsets, sizes))
        pages.append((tags[256], tags[257], struct.unpack("<" + "H" * (len(raw) // 2), raw)))
        ifd = struct.unpack_from("<I", data, ifd + 2 + 12 * count)[0]
    return pages


def test_image(side):
    """A deterministic 8-bit image of `side` x `side` with cell-like blobs and membranes."""
    import math
    return [int(127.5 + 120 * math.sin(x / 9.0) * math.cos(y / 7.0) * math.cos((x + y) / 23.0)) for y in range(side)
            for x in range(side)]


# MARK: - Runtimes


class TensorRTRunner:
    """A TensorRT engine built from the ONNX file with one optimization profile up to the largest
    batch; input and output in CUDA memory held by torch."""

    def __init__(self, onnx_path, batches, precision):
        import tensorrt as trt
        import torch
        self.trt, self.torch = trt, torch
        self.version, self.device_name = trt.__version__, torch.cuda.get_device_name()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        # An fp16 export is fp16 throughout: a strongly typed network keeps its types (TensorRT 10
        # and later); older ones are asked for fp16 kernels instead.
        kinds = trt.NetworkDefinitionCreationFlag
        strongly = hasattr(kinds, "STRONGLY_TYPED")
        flags = (1 << int(kinds.STRONGLY_TYPED)) if strongly else 0
        if hasattr(kinds, "EXPLICIT_BATCH"):
            flags |= 1 << int(kinds.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            raise SystemExit(f"trt_unet: TensorRT could not parse {onnx_path}: "
                             + "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
        config = builder.create_builder_config()
        if precision == "fp16" and not strongly:
            config.set_flag(trt.BuilderFlag.FP16)
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 8 << 30)
        inp, out = network.get_input(0), network.get_output(0)
        self.input_name, self.output_name = inp.name, out.name
        _, channels, side, _ = inp.shape
        self.channels, self.side = channels, side
        profile = builder.create_optimization_profile()
        most = max(batches)
        profile.set_shape(inp.name, (1, channels, side, side), (most, channels, side, side), (most, channels, side, side))
        config.add_optimization_profile(profile)
        started = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise SystemExit(f"trt_unet: TensorRT could not build an engine from {onnx_path}")
        self.build_seconds = time.perf_counter() - started
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        dtype = {trt.DataType.HALF: torch.float16, trt.DataType.FLOAT: torch.float32}
        self.input_dtype = dtype[self.engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = dtype[self.engine.get_tensor_dtype(self.output_name)]

    def prepare(self, batch):
        """Device buffers for `batch` images, filled with a random batch."""
        torch = self.torch
        self.context.set_input_shape(self.input_name, (batch, self.channels, self.side, self.side))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        gen = torch.Generator(device="cuda").manual_seed(0)
        self.x = (torch.rand((batch, self.channels, self.side, self.side), generator=gen, device="cuda") * 2 - 1).to(self.input_dtype)
        self.y = torch.empty(out_shape, dtype=self.output_dtype, device="cuda")
        self.context.set_tensor_address(self.input_name, self.x.data_ptr())
        self.context.set_tensor_address(self.output_name, self.y.data_ptr())

    def step(self):
        """One inference of the prepared batch, its probabilities copied to the host."""
        stream = self.torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise SystemExit("trt_unet: TensorRT's execute_async_v3 failed")
        self.y.float().cpu()

    def run(self, tile):
        """The probabilities [K,S',S'] of one tile [C,S,S] (a nested list of floats) as a flat list."""
        torch = self.torch
        self.prepare(1)
        self.x.copy_(torch.tensor(tile, dtype=torch.float32, device="cuda").reshape(self.x.shape).to(self.input_dtype))
        self.step()
        return self.y.float().cpu().reshape(-1).tolist()

    def peak_device_mb(self):
        return self.torch.cuda.max_memory_allocated() / 2**20


class ONNXRuntimeRunner:
    """ONNX Runtime's CPU provider in TensorRT's place, for machines without TensorRT."""

    def __init__(self, onnx_path, batches, precision):
        import numpy as np
        import onnxruntime as ort
        self.np, self.version, self.device_name = np, ort.__version__, platform.processor() or platform.machine()
        started = time.perf_counter()
        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.build_seconds = time.perf_counter() - started
        inp = self.session.get_inputs()[0]
        self.input_name, self.channels, self.side = inp.name, inp.shape[1], inp.shape[2]
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32

    def prepare(self, batch):
        rng = self.np.random.default_rng(0)
        self.x = (rng.random((batch, self.channels, self.side, self.side)) * 2 - 1).astype(self.input_dtype)

    def step(self):
        self.session.run(None, {self.input_name: self.x})

    def run(self, tile):
        x = self.np.asarray(tile, self.input_dtype).reshape(1, self.channels, self.side, self.side)
        return self.session.run(None, {self.input_name: x})[0].astype(self.np.float32).reshape(-1).tolist()

    def peak_device_mb(self):
        return None


# MARK: - Timing


def time_steps(runner, batch, warmup, steps):
    """Seconds of each timed step (after `warmup` untimed ones) of `runner` at `batch`."""
    runner.prepare(batch)
    seconds = []
    for i in range(steps):
        started = time.perf_counter()
        runner.step()
        if i >= warmup:
            seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds, batch):
    """Throughput and latency statistics as `unet benchmark` computes them (Benchmark.swift)."""
    count, total = max(len(seconds), 1), max(sum(seconds), 1e-12)
    return {
        "throughput": sum(batch / max(s, 1e-12) for s in seconds) / count,
        "throughput_overall": batch * len(seconds) / total,
        "latency_mean_ms": 1000 * sum(seconds) / count,
        "latency_p50_ms": 1000 * percentile(50, seconds),
        "latency_p90_ms": 1000 * percentile(90, seconds),
        "latency_p99_ms": 1000 * percentile(99, seconds),
        "step_seconds": seconds,
    }


def ours_benchmark(args, flags, batch, work):
    """`unet benchmark --mode predict` at `batch` on the same model shape: its JSON object."""
    out = work / f"ours-b{batch}.json"
    command = [args.unet, "benchmark", "--device", args.device, "--mode", "predict", "--batch-size", str(batch),
               "--precision", args.precision, "--warmup-steps", str(args.warmup_steps), "--max-steps",
               str(args.max_steps), "--output", str(out)] + flags
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"trt_unet: {' '.join(command)} exited {run.returncode}:\n{run.stdout}{run.stderr}")
    return json.loads(out.read_text())


# MARK: - Comparison


def compare(args, meta, runner, work):
    """TensorRT's probabilities against `unet predict --probabilities` on one image of one output
    tile, mirror-padded by the margin as ours pads it."""
    side, out, margin = (int(meta[k]) for k in ("unet.input_size", "unet.output_size", "unet.margin"))
    classes, channels = int(meta["unet.classes"]), int(meta["unet.input_channels"])
    if meta.get("unet.output") != "probabilities" or meta.get("unet.layout") != "nchw" or channels != 1:
        raise SystemExit(f"trt_unet: {args.onnx} must be a one-channel NCHW export with --softmax "
                         f"(found output {meta.get('unet.output')}, layout {meta.get('unet.layout')}, {channels} channels)")
    pixels = test_image(out)
    image = work / "tile.png"
    write_gray_png(image, pixels, out, out)
    predicted = work / "predicted"
    command = [args.unet, "predict", "--device", args.device, "--precision", args.precision, "--model-dir", args.model_dir,
               "--input", str(image), "--output", str(predicted), "--probabilities", "--overlap", "0"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"trt_unet: {' '.join(command)} exited {run.returncode}:\n{run.stdout}{run.stderr}")
    pages = read_tiff_pages(predicted / "tile.png-probabilities.tif") if (predicted / "tile.png-probabilities.tif").exists() \
        else read_tiff_pages(predicted / "tile-probabilities.tif")
    # Mirror padding without repeating the edge (numpy's "reflect"), as ours pads an image.
    def reflect(i, n):
        period = 2 * (n - 1)
        i = abs(i) % period if n > 1 else 0
        return period - i if i >= n else i
    scaled = [p / 127.5 - 1 for p in pixels]
    tile = [scaled[reflect(y - margin, out) * out + reflect(x - margin, out)] for y in range(side) for x in range(side)]
    theirs = runner.run(tile)
    worst = 0.0
    for c, (w, h, samples) in enumerate(pages):
        for i, s in enumerate(samples):
            worst = max(worst, abs(theirs[c * out * out + i] - s / 65535))
    return {"largest_abs_difference": worst, "pixels": out * out, "classes": classes,
            "ours_quantisation": 1 / 65535 / 2, "image": f"{out}x{out}, one output tile, mirror-padded by {margin}"}


# MARK: - Main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True, help="the model `unet export --softmax` wrote (NCHW, one channel)")
    p.add_argument("--model-dir", required=True, help="the checkpoint's folder it was exported from (for the comparison)")
    p.add_argument("--unet", required=True, help="our unet binary")
    p.add_argument("--runtime", choices=["tensorrt", "onnxruntime"], default="tensorrt",
                   help="tensorrt (on a GPU), or onnxruntime's CPU provider as a stand-in")
    p.add_argument("--device", default="cuda", help="ours' --device (cuda, cuda:N or cpu)")
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16", help="ours' --precision; TensorRT's when the export is fp32")
    p.add_argument("--batch-sizes", default="16,1", help="comma-separated batch sizes to time")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first, per batch size")
    p.add_argument("--max-steps", type=int, default=30, help="steps per batch size, the warm-up included")
    p.add_argument("--output", required=True, help="the JSON file to write")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes: {args.batch_sizes!r} is not a comma-separated list of numbers")
    if not batches or min(batches) < 1:
        p.error(f"--batch-sizes: every batch size must be at least 1, got {args.batch_sizes}")
    if args.warmup_steps < 0 or args.max_steps <= args.warmup_steps:
        p.error(f"--max-steps: {args.max_steps} leaves no timed step after --warmup-steps {args.warmup_steps}")
    for flag, path in (("--onnx", args.onnx), ("--unet", args.unet)):
        if not os.path.isfile(path):
            p.error(f"{flag}: no file {path}")
    if not os.path.isfile(os.path.join(args.model_dir, "checkpoint.safetensors")):
        p.error(f"--model-dir: no checkpoint.safetensors in {args.model_dir}")
    meta = onnx_metadata(args.onnx)
    if "unet.config" not in meta:
        p.error(f"--onnx: {args.onnx} has no unet.config metadata; export it with `unet export`")

    try:
        runner = (TensorRTRunner if args.runtime == "tensorrt" else ONNXRuntimeRunner)(args.onnx, batches, args.precision)
    except ImportError as e:
        print(f"trt_unet: skipped: {args.runtime} cannot be imported here ({e}); install it "
              f"(pip install {'tensorrt' if args.runtime == 'tensorrt' else 'onnxruntime'}) or pass --runtime onnxruntime", file=sys.stderr)
        return 3
    flags = model_flags(meta)
    with tempfile.TemporaryDirectory(prefix="trt-unet-") as tmp:
        work = Path(tmp)
        results = []
        for batch in batches:
            ours = ours_benchmark(args, flags, batch, work)
            theirs = summary(time_steps(runner, batch, args.warmup_steps, args.max_steps), batch)
            results.append({"batch": batch, "ours": ours, args.runtime: theirs,
                            f"{args.runtime}_over_ours": theirs["throughput"] / max(ours["throughput"], 1e-12)})
            print(f"trt_unet: batch {batch}: ours {ours['throughput']:.1f} img/s, {args.runtime} "
                  f"{theirs['throughput']:.1f} img/s ({results[-1][f'{args.runtime}_over_ours']:.2f}x)", flush=True)
        comparison = compare(args, meta, runner, work)
    print(f"trt_unet: largest |probability difference| {comparison['largest_abs_difference']:.3g} over "
          f"{comparison['pixels']} pixels x {comparison['classes']} classes", flush=True)
    result = {
        "runtime": args.runtime, "version": runner.version, "device_name": runner.device_name, "device": args.device,
        "precision": args.precision, "onnx": str(args.onnx), "onnx_precision": meta.get("unet.precision"),
        "input_size": int(meta["unet.input_size"]), "output_size": int(meta["unet.output_size"]),
        "build_seconds": runner.build_seconds, "peak_device_mb": runner.peak_device_mb(), "warmup_steps": args.warmup_steps,
        "steps": args.max_steps, "results": results, "comparison": comparison, "git_commit": git_commit(),
        "python": platform.python_version(),
    }
    Path(args.output).write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
