#!/usr/bin/env bash
# Installs what the build needs on Debian 12 (Swift itself must already be on PATH): oneDNN for
# the CPU backend, libtiff and libpng for image files. With --tests, also the Python packages that
# some tests compare against, into the repository's own virtual environment .venv/ (Debian's
# Python refuses system-wide pip installs), where the tests look first. Safe to run again; exits
# non-zero, saying what failed, when something cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=false
case "${1:-}" in
  "") ;;
  --tests) with_tests=true ;;
  *) echo "setup: unknown option '$1' (use: bash scripts/setup.sh [--tests])" >&2; exit 2 ;;
esac

fail() { echo "setup: FAILED: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "need root (or sudo) to run: $*"
  fi
}

# MARK: - Debian packages

apt_updated=false
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]} (apt)"
  if ! $apt_updated; then
    as_root apt-get update -qq || fail "apt-get update did not succeed"
    apt_updated=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || fail "apt-get could not install ${missing[*]}"
}

apt_install libdnnl-dev libtiff-dev libpng-dev pkg-config
# Open MPI: `mpirun -np N unet train` trains data-parallel (libmpi is loaded at run time, so the
# build does not need it; its tests check our declarations against mpi.h and run mpirun).
apt_install openmpi-bin libopenmpi-dev

if ! command -v swift >/dev/null; then
  fail "Swift 6 is not on PATH; install it from swift.org, then run this again"
fi

# MARK: - Test-only Python packages

# safetensors reads our checkpoints, tifffile and Pillow read and write images beside ours;
# NVIDIA's NVRTC compiles every CUDA kernel, and the CUDA runtime, cuBLAS and cuDNN bring cuda.h,
# nvrtc.h, cublas_v2.h and cudnn.h, against which our own CUDA declarations are checked; crt and
# cccl hold crt/host_defines.h and nv/target, which those headers include. cuDNN is the full wheel
# (its engines and heuristics; the JIT-only wheel offers no plan), so that the graph API's plans
# for the U-Net are built in the tests; it needs cuBLAS beside it. onnx and onnxruntime check
# `unet export`'s models, tensorboard reads the event files of `--tensorboard`. NCCL brings nccl.h
# (checked like the others) and libnccl.so.2, which loads and reports its version. No GPU is needed
# for any of it. CUPTI brings cupti.h, whose record layouts `--profile` reads, and libcupti.
python_packages=(numpy safetensors tifffile pillow onnx onnxruntime tensorboard nvidia-cuda-nvrtc nvidia-cuda-runtime
  nvidia-cuda-crt nvidia-cuda-cccl nvidia-cublas nvidia-cudnn-cu13 nvidia-nccl-cu13
  nvidia-cuda-cupti)
# The imports and header files that show they are all there.
venv_check='
import glob, os, site, sys
import numpy, safetensors.numpy, tifffile, PIL.Image, onnx, onnxruntime, tensorboard
need = ["lib/libnvrtc.so.*", "include/cuda.h", "include/crt/host_defines.h", "include/nv/target", "include/nvrtc.h", "include/cublas_v2.h", "include/cudnn.h", "lib/libcudnn_engines_precompiled.so.9", "include/nccl.h", "lib/libnccl.so.2", "include/cupti_activity.h", "lib/libcupti.so.*"]
roots = [p for s in site.getsitepackages() for p in glob.glob(os.path.join(s, "nvidia", "*"))]
missing = [n for n in need if not any(glob.glob(os.path.join(r, n)) for r in roots)]
sys.exit("missing: " + " ".join(missing) if missing else 0)
'

if $with_tests; then
  venv=.venv
  if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "$venv_check" 2>/dev/null; then
    echo "setup: test packages present in $venv"
  else
    # A venv needs python3 and Debian's python3-venv (ensurepip).
    if ! command -v python3 >/dev/null || ! python3 -c "import venv, ensurepip" 2>/dev/null; then
      apt_install python3 python3-venv
      python3 -c "import venv, ensurepip" 2>/dev/null \
        || fail "$(command -v python3) cannot make a virtual environment (no venv/ensurepip) even after installing python3-venv"
    fi
    # One that cannot run pip (made by a Python that has since gone) is made anew.
    if [ -e "$venv" ] && ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then rm -rf "$venv"; fi
    if [ ! -e "$venv" ]; then
      echo "setup: creating $venv with $(command -v python3) ($(python3 --version 2>&1))"
      python3 -m venv "$venv" || fail "python3 -m venv $venv did not succeed"
    fi
    echo "setup: installing ${python_packages[*]} into $venv (pip; about 1.4 GB to download, 2.5 GB installed, most of it cuBLAS, cuDNN and NCCL)"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "${python_packages[@]}" \
      || fail "pip could not install the test-only packages into $venv (see pip's message above)"
    "$venv/bin/python3" -c "$venv_check" || fail "the packages installed into $venv are incomplete"
  fi
fi

echo "setup: ready ($(swift --version 2>&1 | head -n 1))"
