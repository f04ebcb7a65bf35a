#!/usr/bin/env python3
"""The reference U-Net (NVIDIA UNet_Medical, REFERENCE.md) in PyTorch, timed as `unet benchmark`
times ours: training steps (forward, cross-entropy + soft Dice, gradients, Adam with L2 5e-4) or
inference steps (forward + softmax, copied to the host) on one random batch, the first
--warmup-steps of --max-steps untimed. Writes the same JSON keys as ours (bench/common.py).

  python3 bench/torch_unet.py --mode train|predict --batch-size N --input-size 572 \
      --warmup-steps W --max-steps S --device cpu|cuda --precision fp32|tf32|fp16|bf16 \
      [--compile] [--channels-last] [--threads T] --output FILE.json \
      [--profile-json PROFILE.json [--profile-trace TRACE.json]]

fp32 turns TF32 off on CUDA, tf32 on; fp16 is autocast(float16) with a GradScaler (initial scale
2**15, x2 after 2000 finite steps, as the reference); bf16 is autocast(bfloat16) without scaler.
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tracked files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def build(torch, config=None):
    """The model class, made after torch is imported (the threads must be set first). `config`
    overrides the reference's shape and start (keys as UNetConfig's: inputChannels, classes,
    baseFilters, depth, padding "valid"|"same", upconvKernel, dropout; and init "glorot"|"he")."""
    nn, F = torch.nn, torch.nn.functional
    c = {"inputChannels": common.INPUT_CHANNELS, "classes": common.CLASSES, "baseFilters": common.BASE_FILTERS,
         "depth": common.DEPTH, "padding": "valid", "upconvKernel": common.UPCONV_KERNEL, "dropout": common.DROPOUT,
         "init": "glorot"}
    c.update(config or {})
    pad = 1 if c["padding"] == "same" else 0

    def f(level):
        return c["baseFilters"] << level

    class UpConv(nn.Module):
        """Transposed conv k x k, stride 2, TensorFlow 'same' ([N,C,H,W] -> [N,C',2H,2W]), ReLU.

        TF pads 'same' for k=3, s=2 by 0 before and 1 after, so its output is the first 2H rows and
        columns of the unpadded transposed conv's (2H+1); PyTorch's padding=1, output_padding=1
        would shift the taps by one pixel."""

        def __init__(self, cin, cout, k):
            super().__init__()
            self.conv = nn.ConvTranspose2d(cin, cout, k, stride=2)

        def forward(self, x):
            h, w = x.shape[-2:]
            return F.relu(self.conv(x)[..., : 2 * h, : 2 * w])

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=pad), nn.ReLU(inplace=True))

    def crop(t, side):
        off = (t.shape[-1] - side) // 2
        return t[..., off: off + side, off: off + side]

    class UNet(nn.Module):
        """Input [N,C,S,S] -> logits [N,K,S',S'] (NCHW; channels-last is a memory format only)."""

        def __init__(self):
            super().__init__()
            depth = c["depth"]
            self.encoder = nn.ModuleList(
                [block(c["inputChannels"] if level == 0 else f(level - 1), f(level)) for level in range(depth)])
            self.bottleneck = block(f(depth - 1), f(depth))
            self.dropout = nn.Dropout(c["dropout"])
            levels = list(reversed(range(depth)))
            self.upconvs = nn.ModuleList([UpConv(f(level + 1), f(level), c["upconvKernel"]) for level in levels])
            self.decoder = nn.ModuleList([block(2 * f(level), f(level)) for level in levels])
            self.head = nn.Conv2d(f(0), c["classes"], 1)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    if c["init"] == "he" and m is not self.head:
                        # N(0, 2 / fan-in), the fan-in of a stride-2 transposed conv being in * k * k / 4.
                        fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                        if isinstance(m, nn.ConvTranspose2d):
                            fan_in = max(fan_in // 4, 1)
                        nn.init.normal_(m.weight, 0.0, (2.0 / fan_in) ** 0.5)
                    else:
                        nn.init.xavier_uniform_(m.weight)  # Glorot uniform, as Keras
                    nn.init.zeros_(m.bias)

        def forward(self, x, dropout_mask=None):
            """With `dropout_mask` ([N,F,B,B], 0 or 1/(1-rate)) the bottleneck is multiplied by it
            instead of drawing one (a step repeated from another framework's record)."""
            skips = []
            for enc in self.encoder:
                x = enc(x)
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self.bottleneck(x)
            x = x * dropout_mask if dropout_mask is not None else self.dropout(x)
            for up, dec, skip in zip(self.upconvs, self.decoder, reversed(skips)):
                x = up(x)
                x = dec(torch.cat([x, crop(skip, x.shape[-1])], dim=1))
            return self.head(x)

    def loss_fn(logits, onehot):
        """Mean softmax cross-entropy + (1 - soft Dice per image and class), in fp32."""
        ce, dice_loss = loss_terms(torch, logits, onehot)
        return ce + dice_loss

    return UNet, loss_fn


def loss_terms(torch, logits, onehot):
    """The reference's loss terms of logits and one-hot targets [N,K,H,W], in fp32: the mean
    softmax cross-entropy and 1 - soft Dice (per image and class, then averaged)."""
    logp = torch.nn.functional.log_softmax(logits.float(), dim=1)
    ce = -(onehot * logp).sum(dim=1).mean()
    p = logp.exp()
    inter = (p * onehot).sum(dim=(2, 3))
    denom = (p * p + onehot * onehot).sum(dim=(2, 3))
    dice = ((2 * inter + common.DICE_SMOOTHING) / (denom + common.DICE_SMOOTHING)).mean()
    return ce, 1 - dice


def main():
    p = common.parser("PyTorch", ["fp32", "tf32", "fp16", "bf16"], ["cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model, the loss and the optimizer step")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and the batch")
    p.add_argument("--profile-json", help="after the timed steps, profile one more step with torch.profiler and write "
                   "its device time per kernel and per op (as `unet benchmark --profile-json`) to this file")
    p.add_argument("--profile-trace", help="with --profile-json: also write that step's Chrome trace to this file")
    args = p.parse_args()
    common.check_args(p, args)
    common.set_thread_environment(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        common.fail("--device cuda: torch.cuda.is_available() is False (a CPU wheel, or no GPU)")
    if cuda:
        torch.backends.cudnn.benchmark = True
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    UNet, loss_fn = build(torch)
    model = UNet()
    count = sum(p.numel() for p in model.parameters())
    assert count == common.PARAMETERS, f"the model has {count} parameters, the reference {common.PARAMETERS}"
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)

    # One random batch, made once so that no data pipeline is timed: images in [0, 1), one-hot labels.
    n, s = args.batch_size, args.input_size
    out = common.geometry(s)[2]
    g = torch.Generator().manual_seed(args.seed)
    images = torch.rand(n, common.INPUT_CHANNELS, s, s, generator=g).to(device=device, memory_format=memory_format)
    labels = torch.randint(0, common.CLASSES, (n, out, out), generator=g)
    onehot = torch.nn.functional.one_hot(labels, common.CLASSES).permute(0, 3, 1, 2).float().contiguous().to(device)

    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)

    def autocast():
        return torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def forward_loss(x, t):
        with autocast():
            return loss_fn(model(x), t)

    def predict(x):
        with autocast():
            return torch.softmax(model(x).float(), dim=1)

    fwd_loss, fwd_predict = forward_loss, predict
    if args.compile:
        fwd_loss = torch.compile(forward_loss, mode=args.compile_mode)
        fwd_predict = torch.compile(predict, mode=args.compile_mode)

    if args.mode == "train":
        model.train()
        # L2 weight decay added to the gradient (not decoupled): the reference's loss term's gradient.
        opt = torch.optim.Adam(model.parameters(), lr=common.LEARNING_RATE, betas=(0.9, 0.999),
                               eps=common.ADAM_EPSILON, weight_decay=common.WEIGHT_DECAY)
        scaler = torch.amp.GradScaler(device.type, init_scale=2.0**15, growth_interval=2000) if args.precision == "fp16" else None
        opt_step = torch.compile(opt.step, mode=args.compile_mode) if args.compile and scaler is None else opt.step

        def step():
            opt.zero_grad(set_to_none=True)
            loss = fwd_loss(images, onehot)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt_step()
            return loss.item()  # to the host, as ours reads the loss of every step
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                return fwd_predict(images).cpu()

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup_steps):
        step()
    sync()
    seconds = []
    for _ in range(args.max_steps - args.warmup_steps):
        start = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - start)

    if args.profile_json:
        profile_step(torch, step, sync, args, device)

    device_name = torch.cuda.get_device_name(device) if cuda else common.cpu_name()
    config = common.base_config(args, "pytorch", torch.__version__, device_name, args.compile, args.channels_last, count)
    config["onednn"] = onednn_version(torch)
    if cuda:
        config["cuda"] = torch.version.cuda
        config["cudnn"] = torch.backends.cudnn.version()
    peak_device = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    flops = common.flops_per_step(args.mode, s, n)
    common.finish(args, common.result(seconds, flops, n, peak_device, config))


def profile_step(torch, step, sync, args, device):
    """One step under torch.profiler: device time per kernel (CUDA events) and self device time per
    op (aten::*), written as JSON beside ours (`unet benchmark --profile-json`)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        step()
        sync()
    kernels = {}
    for e in prof.events():
        if cuda and e.device_type == torch.autograd.DeviceType.CUDA:
            k = kernels.setdefault(e.name, {"name": e.name, "calls": 0, "seconds": 0.0})
            k["calls"] += 1
            k["seconds"] += e.time_range.elapsed_us() * 1e-6
    ops = []
    for a in prof.key_averages():
        us = getattr(a, "self_device_time_total", None)
        us = getattr(a, "self_cuda_time_total", 0) if us is None else us
        if a.device_type == torch.autograd.DeviceType.CPU and us > 0:
            ops.append({"name": a.key, "calls": a.count, "seconds": us * 1e-6})
    total = sum(k["seconds"] for k in kernels.values())
    result = {"mode": "torch.profiler", "header": f"torch {torch.__version__} profiler, one step after the timed ones",
              "kernels": sorted(kernels.values(), key=lambda k: -k["seconds"]),
              "ops": sorted(ops, key=lambda o: -o["seconds"]), "kernel_seconds": total,
              "benchmark": {"mode": args.mode, "batch_size": args.batch_size, "profiled_steps": 1, "precision": args.precision,
                            "device": torch.cuda.get_device_name(device) if cuda else "cpu", "input_size": args.input_size,
                            "channels_last": args.channels_last, "compiled": args.compile}}
    with open(args.profile_json, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    if args.profile_trace:
        prof.export_chrome_trace(args.profile_trace)
    print(f"profile: {len(kernels)} kernels, {sum(k['calls'] for k in kernels.values())} launches, "
          f"{total * 1e3:.2f} ms of device time in the profiled step -> {args.profile_json}", flush=True)


def onednn_version(torch):
    """The oneDNN version torch was built with ("3.12.0"), from its build config; None if not found."""
    import re

    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            m = re.search(r"v(\d+(?:\.\d+)+)", line)
            if m:
                return m.group(1)
    return None

if __name__ == "__main__":
    main()
