#!/usr/bin/env bash
# The GPU check, run on a lent GPU machine (CUDA 13, cuDNN 9 in pip's nvidia packages, PyTorch, no
# Swift): unpacks the bundle that scripts/package-device.sh made, then runs `unet doctor`,
# `unet doctor --check`, our training and inference benchmarks and the PyTorch peer
# (bench/torch_unet.py) on the same card, writing JSON under $OUT and a table on stdout.
#
#   bash scripts/device-check.sh [smoke|full]     (OUT defaults to ./device-out)
#
# smoke: doctor, a short training run and one benchmark of each mode (about 1 minute).
# full:  what fits in about 8 minutes: the conformance check, the commands end to end, the NCCL
#        path under `mpirun -np 1`, fp16 and
#        bf16 training against fp32's validation Dice, then the benchmarks in order of importance
#        (TensorRT beside ours after inference at batch 16 and 1: bench/trt_unet.py);
#        those that would start after UNET_DEVICE_BUDGET seconds (default 400) are skipped and
#        listed (the last run, without the Dice step, had 300 s and reached 25 of 43).
# Convolutions: ours runs cuDNN's graph API first (each shape's plans timed once, the fastest kept
# in $UNET_CUDNN_PLAN_CACHE, here results/cudnn-plans), "ours-legacy" the legacy API alone
# (UNET_CUDNN_GRAPH=0); UNET_CONV_PATHS="graph legacy" (the default), "graph" or "legacy" picks them.
# What comes back from a lent machine is at most 8 files, so $OUT gets: device-check.log (all
# output), summary.md (the table), check.json and check-graph.json (doctor --check), profile-ours.json
# and profile-torch.json (one fp16 training step at batch 8 of each, profiled) and results.tar.gz
# (every other JSON, PyTorch's Chrome trace of the profiled step among them).
set -uo pipefail
cd "$(dirname "$0")/.."

mode="${1:-full}"
OUT="${OUT:-$PWD/device-out}"
bundle="${UNET_BUNDLE:-.device/unet-bundle.tar.xz}"
budget="${UNET_DEVICE_BUDGET:-400}"
root=/tmp/unet-device
results="$root/results"
mkdir -p "$OUT" "$root" "$results"
exec > >(tee "$OUT/device-check.log") 2>&1

# MARK: - Set-up

if [ ! -f "$bundle" ]; then
  echo "device-check: no $bundle; build it with: bash scripts/package-device.sh" >&2
  exit 2
fi
xz -dc "$bundle" | tar -C "$root" -xf -
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
# The commit the bundle was built from, not this copy's HEAD, goes into our benchmark JSON.
[ -f "$root/COMMIT" ] && export UNET_GIT_COMMIT="$(cat "$root/COMMIT")"
unet="$root/bin/unet"
started=$(date +%s)

# Runs one step with a time limit; a failure is reported and the script goes on.
step() {
  local name="$1" limit="$2"
  shift 2
  echo "== $name ($(($(date +%s) - started)) s in)"
  timeout "$limit" "$@"
  local rc=$?
  [ "$rc" -eq 0 ] || echo "!! $name exited $rc"
  return 0
}

step machine 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; \
  python3 -c "import torch; print(\"torch\", torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"; \
  ls -d $(python3 -c "import site; print(site.getsitepackages()[0])")/nvidia/*/lib 2>/dev/null | head -20'
step doctor 120 "$unet" doctor

# MARK: - Smoke

if [ "$mode" = smoke ]; then
  step train-small 120 "$unet" train --device cuda --max-steps 40 --log-every 10 --model-dir "$root/run"
  step predict-b1 90 "$unet" benchmark --device cuda --mode predict --batch-size 1 --warmup-steps 2 --max-steps 8 \
    --profile --output "$OUT/ours-predict-b1.json"
  step train-b1 120 "$unet" benchmark --device cuda --mode train --batch-size 1 --warmup-steps 2 --max-steps 6 \
    --profile --output "$OUT/ours-train-b1.json"
  echo "device-check: smoke done in $(($(date +%s) - started)) s"
  exit 0
fi

# MARK: - Conformance and the commands end to end

if "$unet" doctor --help | grep -q -- "--check"; then
  step doctor-check 180 "$unet" doctor --check --output "$OUT/check.json"
  # The same check with cuDNN's graph API first (off by default until this passes on a GPU).
  step doctor-check-graph 180 env UNET_CUDNN_GRAPH=1 "$unet" doctor --check --output "$OUT/check-graph.json"
else
  echo "!! this build has no doctor --check"
fi

data="$root/data" model="$root/model"
step e2e 150 bash -c "set -e
  '$unet' data synth --output '$data' --size 256 --train-count 12 --test-count 2
  '$unet' train --device cuda --data-dir '$data' --model-dir '$model' --depth 3 --base-filters 16 --padding same \
    --input-size 128 --batch-size 4 --learning-rate 1e-3 --max-steps 150 --log-every 50 --fold 0
  '$unet' evaluate --device cuda --data-dir '$data' --model-dir '$model' --fold 0 --output '$results/e2e-evaluate.json'
  '$unet' predict --device cuda --data-dir '$data' --model-dir '$model' --output '$root/predictions'
  ls '$root/predictions' | head -4"

# The data-parallel path on a GPU: one rank under mpirun (NCCL works with one), a few training steps whose
# gradients NCCL sums on a stream of its own (rank 0's unique id broadcast over MPI). mpirun is the
# machine's, else the bundle's Open MPI (relocated with OPAL_PREFIX); libnccl.so.2 comes from the
# machine's pip packages (PyTorch's nvidia-nccl) or UNET_CUDA_PATH, found like the other CUDA libraries.
mpirun_bin="$(command -v mpirun || true)"
if [ -z "$mpirun_bin" ] && [ -x "$root/openmpi/bin/mpirun" ]; then
  mpirun_bin="$root/openmpi/bin/mpirun"
  export OPAL_PREFIX="$root/openmpi" PMIX_INSTALL_PREFIX="$root/pmix" PMIX_MCA_mca_base_component_path="$root/pmix/lib/pmix"
fi
if [ -n "$mpirun_bin" ]; then
  step nccl-one-rank 150 bash -c "set -eo pipefail
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 '$mpirun_bin' -np 1 -x LD_LIBRARY_PATH -x PATH \
      '$unet' train --device cuda --precision fp16 --data-dir '$data' --model-dir '$root/nccl' --exec-mode train \
      --depth 3 --base-filters 16 --padding same --input-size 128 --batch-size 4 --learning-rate 1e-3 --max-steps 20 \
      --log-every 5 2>&1 | tee '$results/nccl-one-rank.log'
    grep -q 'NCCL all-reduce on the GPU' '$results/nccl-one-rank.log'
    grep -q 'step 20: train_ce_loss' '$results/nccl-one-rank.log'"
else
  echo "!! nccl-one-rank: skipped: no mpirun on this machine and none in the bundle (package-device.sh carries Open MPI's)"
fi

# The mixed-precision target: training in fp16 and in bf16 reaches the fp32 validation Dice within 0.005 (same data,
# seed and steps; each evaluated in the precision it trained in).
step precision-dice 240 bash -c "set -e
  for p in fp32 fp16 bf16; do
    '$unet' train --device cuda --precision \$p --data-dir '$data' --model-dir '$root/dice-'\$p --depth 3 --base-filters 16 \
      --padding same --input-size 128 --batch-size 4 --learning-rate 1e-3 --max-steps 400 --log-every 100 --fold 0 --seed 7
    '$unet' evaluate --device cuda --precision \$p --data-dir '$data' --model-dir '$root/dice-'\$p --fold 0 \
      --output '$results/precision-dice-'\$p.json
  done
  python3 bench/device_table.py --precision-dice '$results'"

# MARK: - Benchmarks, ours beside PyTorch

precisions="fp32 tf32 fp16 bf16"
skipped=()

# Runs one contestant in one configuration unless the budget is spent.
#   bench NAME MODE BATCH PRECISION WARMUP STEPS COMMAND...   (COMMAND gets the common flags)
bench() {
  local name="$1" mode="$2" batch="$3" precision="$4" warmup="$5" steps="$6"
  shift 6
  local file="$results/$name-$mode-b$batch-$precision.json"
  if [ $(($(date +%s) - started)) -gt "$budget" ]; then skipped+=("$name $mode b$batch $precision"); return 0; fi
  step "$name $mode b$batch $precision" 90 "$@" --mode "$mode" --batch-size "$batch" --precision "$precision" \
    --input-size 572 --warmup-steps "$warmup" --max-steps "$steps" --output "$file"
}

# The convolution paths to measure, and where the graph API keeps its timed plans (shared by every
# run of ours, so that only the first run of a shape times its plans; they come back in results).
conv_paths="${UNET_CONV_PATHS:-graph legacy}"
export UNET_CUDNN_PLAN_CACHE="$results/cudnn-plans"

ours() {
  case " $conv_paths " in *" graph "*) bench ours "$@" env UNET_CUDNN_GRAPH=1 "$unet" benchmark --device cuda ;; esac
}

# The compiled step (--xla): traced once, then each step one CUDA graph launch (the JSON's
# config.captured says whether it was captured); file names ours-xla-<mode>-b<batch>-<precision>.json.
ours_xla() {
  case " $conv_paths " in *" graph "*) bench ours-xla "$@" env UNET_CUDNN_GRAPH=1 "$unet" benchmark --device cuda --xla ;; esac
}

ours_legacy() {
  case " $conv_paths " in *" legacy "*) bench ours-legacy "$@" env UNET_CUDNN_GRAPH=0 "$unet" benchmark --device cuda ;; esac
}

# Times the graph API's plans for the training step's shapes once, before the timed runs (one
# untimed step per precision; what it finishes is kept even if it runs out of time).
case " $conv_paths " in
  *" graph "*)
    step cudnn-plans 240 bash -c "for p in $precisions; do
      '$unet' benchmark --device cuda --mode train --batch-size 8 --precision \$p --input-size 572 --warmup-steps 0 \
        --max-steps 1 2>&1 | grep -E 'cudnn-graph: no|plans timed' | tail -3
    done; ls '$UNET_CUDNN_PLAN_CACHE'"
    ;;
esac

# PyTorch in its fastest layout per precision: channels-last (NHWC, as ours) for Tensor Core
# math; NCHW for strict fp32, where channels-last ran over two minutes per configuration on an
# H100 (cudnn.benchmark timing slow fp32 NHWC kernels).
layout() { [ "$1" = fp32 ] || echo --channels-last; }

torch_eager() {
  bench torch-eager "$@" python3 bench/torch_unet.py --device cuda $(layout "$3")
}

torch_compiled() {
  bench torch-compile "$@" python3 bench/torch_unet.py --device cuda $(layout "$3") --compile
}

# TensorRT beside ours (bench/trt_unet.py): the reference's 572->388 U-Net trained two steps on
# slices large enough for it, exported in fp16 with the softmax; TensorRT builds an fp16 engine,
# both time inference at batch 16 and 1, and the probabilities of one image are compared. Without
# an importable tensorrt it installs the wheels that package-device.sh --tensorrt put in
# .device/tensorrt-wheels, or says that it is skipped.
tensorrt() {
  if [ $(($(date +%s) - started)) -gt "$budget" ]; then skipped+=("tensorrt"); return 0; fi
  local site="$root/tensorrt-site"
  if ! python3 -c "import tensorrt" 2>/dev/null; then
    if ls .device/tensorrt-wheels/*.whl >/dev/null 2>&1; then
      python3 -m pip install --quiet --no-index --find-links .device/tensorrt-wheels --target "$site" \
        tensorrt-cu13-bindings tensorrt-cu13-libs \
        || echo "!! tensorrt: the wheels in .device/tensorrt-wheels did not install"
      export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if ! python3 -c "import tensorrt" 2>/dev/null; then
      echo "!! tensorrt: skipped: no tensorrt on this machine and no wheels in .device/tensorrt-wheels (bash scripts/package-device.sh --tensorrt)"
      return 0
    fi
  fi
  step tensorrt 300 bash -c "set -e
    '$unet' data synth --output '$root/data-572' --size 400 --train-count 2 --test-count 1
    '$unet' train --device cuda --data-dir '$root/data-572' --model-dir '$root/model-572' --exec-mode train \
      --folds 2 --fold 0 --max-steps 2 --log-every 1
    '$unet' export --model-dir '$root/model-572' --output '$root/unet-572-fp16.onnx' --precision fp16 --softmax
    python3 bench/trt_unet.py --onnx '$root/unet-572-fp16.onnx' --model-dir '$root/model-572' --unet '$unet' \
      --device cuda --precision fp16 --batch-sizes 16,1 --warmup-steps 3 --max-steps 30 --output '$results/tensorrt.json'"
}

# Where the time goes: one fp16 training step at batch 8 of ours, its device time per op and per
# kernel read from CUPTI's activity records (no wait between ops; the JSON's "mode" says
# "waiting (no tracer)" and its "header" why if libcupti could not be used), and PyTorch's same step
# (channels-last, autocast, GradScaler) under torch.profiler, both after 3 untimed steps.
profiles() {
  if [ $(($(date +%s) - started)) -gt "$budget" ]; then skipped+=("profiles"); return 0; fi
  step profile-ours 150 env UNET_CUDNN_GRAPH=1 "$unet" benchmark --device cuda --mode train --batch-size 8 --precision fp16 \
    --input-size 572 --warmup-steps 3 --max-steps 4 --output "$results/profile-ours-benchmark.json" \
    --profile-json "$OUT/profile-ours.json"
  step profile-torch 150 python3 bench/torch_unet.py --device cuda --channels-last --mode train --batch-size 8 --precision fp16 \
    --input-size 572 --warmup-steps 3 --max-steps 4 --output "$results/profile-torch-benchmark.json" \
    --profile-json "$OUT/profile-torch.json" --profile-trace "$results/profile-torch-trace.json"
}

# In order of importance: training at batch 8 and inference at batch 16 and 1 carry the targets.
for p in $precisions; do ours train 8 "$p" 3 10; ours_legacy train 8 "$p" 3 10; torch_eager train 8 "$p" 3 10; done
ours_xla train 8 fp16 3 10
profiles
for p in $precisions; do ours predict 16 "$p" 3 12; ours_legacy predict 16 "$p" 3 12; torch_eager predict 16 "$p" 3 12; done
for p in $precisions; do ours predict 1 "$p" 5 30; torch_eager predict 1 "$p" 5 30; done
ours_xla predict 1 fp16 5 30
tensorrt
for p in $precisions; do ours train 1 "$p" 3 15; torch_eager train 1 "$p" 3 15; done
torch_compiled train 8 fp16 3 10
torch_compiled predict 16 fp16 3 12
for p in $precisions; do ours predict 8 "$p" 3 12; torch_eager predict 8 "$p" 3 12; done
torch_compiled predict 1 fp16 5 30

# MARK: - Report

[ ${#skipped[@]} -eq 0 ] || printf 'skipped (over the %s s budget): %s\n' "$budget" "$(IFS=,; echo "${skipped[*]}")"
python3 bench/device_table.py "$results" | tee "$OUT/summary.md"
# The two convolution paths side by side (images/s), with PyTorch's eager run for reference.
python3 - "$results" <<'PY' | tee -a "$OUT/summary.md"
import json, re, sys
from pathlib import Path
rows = {}
for path in Path(sys.argv[1]).glob("*.json"):
    m = re.match(r"^(ours|ours-legacy|torch-eager)-(train|predict)-b(\d+)-(\w+)\.json$", path.name)
    if m:
        try:
            rows.setdefault((m[2], int(m[3]), m[4]), {})[m[1]] = json.loads(path.read_text()).get("throughput")
        except (OSError, ValueError):
            pass
keys = sorted(k for k, v in rows.items() if "ours-legacy" in v)
if keys:
    print("\n### convolution paths: cuDNN graph API (ours) against the legacy API (ours-legacy), images/s\n")
    print("| mode | batch | precision | graph | legacy | graph / legacy | torch-eager |")
    print("|---|---|---|---|---|---|---|")
    for k in keys:
        v = rows[k]
        g, l, t = v.get("ours"), v.get("ours-legacy"), v.get("torch-eager")
        f = lambda x: "-" if x is None else f"{x:.1f}"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {f(g)} | {f(l)} | {f'{g / l:.2f}x' if g and l else '-'} | {f(t)} |")
PY
# The compiled step's targets: fp16 training at batch 8 >= 1.1x our eager step, batch-1 fp16
# inference latency <= 0.7x PyTorch eager's; also kept as results/compiled-ablation.json.
python3 - "$results" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
from pathlib import Path
folder = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return None
eager, xla = load("ours-train-b8-fp16.json"), load("ours-xla-train-b8-fp16.json")
torch1, xla1 = load("torch-eager-predict-b1-fp16.json"), load("ours-xla-predict-b1-fp16.json")
report = {
    "train_b8_fp16": {"eager_images_per_s": eager and eager.get("throughput"), "compiled_images_per_s": xla and xla.get("throughput"),
                      "captured": xla and xla.get("config", {}).get("captured"), "target": ">= 1.1x eager"},
    "predict_b1_fp16": {"torch_eager_p50_ms": torch1 and torch1.get("latency_p50_ms"), "compiled_p50_ms": xla1 and xla1.get("latency_p50_ms"),
                        "captured": xla1 and xla1.get("config", {}).get("captured"), "target": "<= 0.7x torch eager"},
}
t, p = report["train_b8_fp16"], report["predict_b1_fp16"]
t["compiled_over_eager"] = t["compiled_images_per_s"] / t["eager_images_per_s"] if t["compiled_images_per_s"] and t["eager_images_per_s"] else None
p["compiled_over_torch"] = p["compiled_p50_ms"] / p["torch_eager_p50_ms"] if p["compiled_p50_ms"] and p["torch_eager_p50_ms"] else None
(folder / "compiled-ablation.json").write_text(json.dumps(report, indent=2))
f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"
print("\n### the compiled step (--xla, one CUDA graph per step)\n")
print("| measure | eager | compiled | ratio | target | captured |")
print("|---|---|---|---|---|---|")
print(f"| train b8 fp16, images/s | {f(t['eager_images_per_s'], 1)} | {f(t['compiled_images_per_s'], 1)} | {f(t['compiled_over_eager'])}x | >= 1.1x | {t['captured']} |")
print(f"| predict b1 fp16, p50 ms (eager = PyTorch) | {f(p['torch_eager_p50_ms'])} | {f(p['compiled_p50_ms'])} | {f(p['compiled_over_torch'])}x | <= 0.7x | {p['captured']} |")
PY
python3 - "$results/tensorrt.json" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
if path.exists():
    r = json.loads(path.read_text())
    print(f"\n### TensorRT {r['version']} ({r['onnx_precision']} engine, built in {r['build_seconds']:.0f} s) beside ours "
          f"({r['precision']}), {r['input_size']}->{r['output_size']}, images/s\n")
    print("| batch | ours | TensorRT | TensorRT / ours |")
    print("|---|---|---|---|")
    for row in r["results"]:
        print(f"| {row['batch']} | {row['ours']['throughput']:.1f} | {row['tensorrt']['throughput']:.1f} | {row['tensorrt_over_ours']:.2f}x |")
    print(f"\nlargest |probability difference|, TensorRT against unet predict: {r['comparison']['largest_abs_difference']:.3g}")
PY
# The two profiles side by side: device time and launches per step, the kernels that take the most.
python3 - "$OUT/profile-ours.json" "$OUT/profile-torch.json" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
from pathlib import Path
sides = {}
for name, path in (("ours", sys.argv[1]), ("PyTorch", sys.argv[2])):
    try:
        sides[name] = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        print(f"\n(no profile of {name}: {path} missing or unreadable)")
if sides:
    print("\n### one fp16 training step at batch 8, profiled (ours through CUPTI, PyTorch through torch.profiler)\n")
    for name, p in sides.items():
        print(f"- {name}: {p.get('mode')}: {p.get('header')}")
    print("\n| | device ms per step | launches and copies | distinct kernels |")
    print("|---|---|---|---|")
    for name, p in sides.items():
        k, steps = p.get("kernels", []), max(p.get("benchmark", {}).get("profiled_steps", 1), 1)
        print(f"| {name} | {sum(r['seconds'] for r in k) * 1e3 / steps:.2f} | {sum(r['calls'] for r in k) // steps} | {len(k)} |")
    for name, p in sides.items():
        k, steps = p.get("kernels", []), max(p.get("benchmark", {}).get("profiled_steps", 1), 1)
        total = sum(r["seconds"] for r in k) or 1e-12
        print(f"\n{name}, the 12 kernels with the most device time:\n")
        print("| kernel | calls | ms | share |")
        print("|---|---|---|---|")
        for r in k[:12]:
            shown = r["name"] if len(r["name"]) <= 70 else r["name"][:67] + "..."
            print(f"| `{shown}` | {r['calls'] // steps} | {r['seconds'] * 1e3 / steps:.3f} | {100 * r['seconds'] / total:.1f}% |")
PY
tar -C "$root" -czf "$OUT/results.tar.gz" results
echo "device-check: done in $(($(date +%s) - started)) s"
