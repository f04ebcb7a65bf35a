#!/usr/bin/env python3
"""Repeats in PyTorch the first steps that `unet train --dump-steps N:DIR` recorded, and compares.

  python3 bench/golden_torch.py DIR [--rtol 1e-4] [--weights-rtol 0.05] [--output FILE.json]

DIR holds initial.safetensors (our initial weights and the run's config and hyper-parameters),
step-NNNN.safetensors (each step's images, one-hot targets and the bottleneck's dropout mask, NHWC),
losses.json (our cross-entropy, Dice loss and total per step) and final.safetensors (our weights
after the last recorded step). The script builds the same U-Net in PyTorch (bench/torch_unet.py's
model), loads our initial weights, and runs the same steps: the same loss (cross-entropy + soft
Dice + L2 weight decay on every weight and bias), the same dropout masks and Adam in Keras's form
(bias correction folded into the step size, epsilon added to sqrt(v)), in fp32. It prints every
step's three loss terms side by side, and exits 1 when one differs by more than --rtol (relative)
or the final weights differ by more than --weights-rtol (the norm of the difference over the norm
of what the steps changed). Exit 2: the record is incomplete or unreadable.
"""

import argparse
import json
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402


def fail(message, status=2):
    print(f"golden_torch.py: {message}", file=sys.stderr)
    sys.exit(status)


# MARK: - Our names and layouts


def module_for(model, name, depth):
    """The torch module holding our parameter `name` ("encoder0.conv1.kernel") and the kind."""
    parts = name.split(".")
    if parts[0].startswith("encoder"):
        block = model.encoder[int(parts[0][len("encoder"):])]
    elif parts[0] == "bottleneck":
        block = model.bottleneck
    elif parts[0].startswith("decoder"):
        block = model.decoder[depth - 1 - int(parts[0][len("decoder"):])]
    elif parts[0].startswith("upconv"):
        return model.upconvs[depth - 1 - int(parts[0][len("upconv"):])].conv, parts[-1]
    elif parts[0] == "head":
        return model.head, parts[-1]
    else:
        fail(f"unknown parameter {name}")
    return block[0 if parts[1] == "conv0" else 2], parts[-1]


def to_torch(torch, array, kind):
    """Our kernel (HWIO; transposed: [k,k,out,in]) as torch's ([out,in,k,k]; transposed: [in,out,k,k])."""
    t = torch.from_numpy(array.copy())
    return t.permute(3, 2, 0, 1).contiguous() if kind == "kernel" else t


def load(torch, model, tensors, depth):
    with torch.no_grad():
        for name, array in tensors.items():
            module, kind = module_for(model, name, depth)
            target = module.weight if kind == "kernel" else module.bias
            value = to_torch(torch, array, kind)
            if tuple(value.shape) != tuple(target.shape):
                fail(f"{name}: shape {tuple(value.shape)} in the record, {tuple(target.shape)} in the model")
            target.copy_(value)


# MARK: - Steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("record", help="the folder that unet train --dump-steps N:DIR wrote")
    p.add_argument("--rtol", type=float, default=1e-4, help="largest relative difference of a loss term (1e-4)")
    p.add_argument("--weights-rtol", type=float, default=0.05,
                   help="largest |W_torch - W_ours| / |W_ours - W_initial| after the steps (0.05)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--output", help="also write the comparison as JSON")
    a = p.parse_args()

    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from safetensors import safe_open

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    rec = a.record
    try:
        with safe_open(os.path.join(rec, "initial.safetensors"), "np") as f:
            meta = f.metadata()
        initial = load_file(os.path.join(rec, "initial.safetensors"))
        final = load_file(os.path.join(rec, "final.safetensors"))
        ours = json.load(open(os.path.join(rec, "losses.json")))["steps"]
    except (OSError, ValueError, KeyError) as e:
        fail(f"{rec}: not a complete record of unet train --dump-steps ({e})")
    config = json.loads(meta["config"])
    depth, steps = config["depth"], int(meta["steps"])
    lr, wd = float(meta["learning_rate"]), float(meta["weight_decay"])
    b1, b2, eps = float(meta["adam_beta1"]), float(meta["adam_beta2"]), float(meta["adam_epsilon"])
    warmup = int(meta.get("lr_warmup_steps", "0"))
    if len(ours) < steps:
        fail(f"{rec}: losses.json has {len(ours)} steps, the record {steps}")

    UNet, _ = torch_unet.build(torch, {k: config[k] for k in
                                       ("inputChannels", "classes", "baseFilters", "depth", "padding", "upconvKernel", "dropout")})
    model = UNet()
    load(torch, model, initial, depth)
    model.train()
    params = [p for p in model.parameters()]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]

    rows, worst = [], 0.0
    for i in range(steps):
        batch = load_file(os.path.join(rec, f"step-{i:04d}.safetensors"))
        x = torch.from_numpy(batch["images"]).permute(0, 3, 1, 2).contiguous()
        t = torch.from_numpy(batch["targets"]).permute(0, 3, 1, 2).contiguous()
        mask = torch.from_numpy(batch["dropout_mask"]).permute(0, 3, 1, 2).contiguous() if "dropout_mask" in batch else None
        for p in params:
            p.grad = None
        logits = model(x, dropout_mask=mask)
        ce, dice = torch_unet.loss_terms(torch, logits, t)
        (ce + dice).backward()
        with torch.no_grad():
            penalty = sum((p.double() ** 2).sum() for p in params).item() * wd / 2
            step = i + 1
            rate = lr * min(1.0, step / warmup) if warmup > 0 else lr
            size = rate * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            for p, mi, vi in zip(params, m, v):
                g = p.grad + wd * p
                mi.mul_(b1).add_(g, alpha=1 - b1)
                vi.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(size * mi / (vi.sqrt() + eps))
        theirs = {"cross_entropy": ce.item(), "dice": dice.item()}
        theirs["total"] = theirs["cross_entropy"] + theirs["dice"] + penalty
        row = {"step": step}
        for key in ("cross_entropy", "dice", "total"):
            o = ours[i][key]
            rel = abs(theirs[key] - o) / max(abs(o), 1e-12)
            row[key] = {"ours": o, "torch": theirs[key], "relative_difference": rel}
            worst = max(worst, rel)
        rows.append(row)
        print(f"step {step:3d}: ce {ours[i]['cross_entropy']:.7f} / {theirs['cross_entropy']:.7f}  "
              f"dice {ours[i]['dice']:.7f} / {theirs['dice']:.7f}  total {ours[i]['total']:.7f} / {theirs['total']:.7f}  "
              f"(ours / torch; worst relative {max(row[k]['relative_difference'] for k in ('cross_entropy', 'dice', 'total')):.2e})")

    # The final weights, against how far the steps moved ours.
    diff_sq = moved_sq = 0.0
    largest = ("", 0.0)
    for name, array in final.items():
        module, kind = module_for(model, name, depth)
        theirs = (module.weight if kind == "kernel" else module.bias).detach()
        ours_final = to_torch(torch, array, kind).double()
        d = (theirs.double() - ours_final)
        diff_sq += (d ** 2).sum().item()
        moved_sq += ((ours_final - to_torch(torch, initial[name], kind).double()) ** 2).sum().item()
        if d.abs().max().item() > largest[1]:
            largest = (name, d.abs().max().item())
    weights_rel = math.sqrt(diff_sq) / max(math.sqrt(moved_sq), 1e-30)
    passed = worst <= a.rtol and weights_rel <= a.weights_rtol
    summary = {
        "steps": steps, "config": config, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "largest_loss_relative_difference": worst, "rtol": a.rtol,
        "weights_relative_difference": weights_rel, "weights_rtol": a.weights_rtol,
        "largest_weight_difference": {"parameter": largest[0], "absolute": largest[1]},
        "passed": passed, "per_step": rows,
    }
    print(f"largest relative difference of a loss term over {steps} steps: {worst:.3e} (limit {a.rtol:g}); "
          f"final weights: |W_torch - W_ours| / |W_ours - W_initial| = {weights_rel:.3e} (limit {a.weights_rtol:g}), "
          f"largest |difference| {largest[1]:.3e} in {largest[0]}")
    print("PASSED" if passed else "FAILED")
    if a.output:
        with open(a.output, "w") as f:
            json.dump(summary, f, indent=1)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
