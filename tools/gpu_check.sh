#!/usr/bin/env bash
# First-GPU check, under 8 minutes on one GPU, on a machine without a package registry:
# 1. install what it lacks from wheelhouse/ (built beforehand with `make wheelhouse PY=3.12`)
#    into a venv that sees the machine's own torch/torchvision/timm/opencv;
# 2. the CUDA-marked tests (pytest -m cuda);
# 3. a short fp16 AMP training on synthetic data with COCO evaluation on CUDA (tools/demo.sh);
# 4. tools/benchmark.py --device cuda at 800x800: LoRA vs full (images/s, max allocated memory),
#    fp16 with channels_last off/on, bf16; inference plain / LoRA unmerged / merged.
# Writes gpu_check.log and gpu_check.json into $OUT (default output/gpu_check). Each step has a
# time limit (480 s in all) and its exit status goes into the JSON; a failed step does not stop
# the later ones.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${OUT:-output/gpu_check}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
exec > >(tee "$LOG") 2>&1
BASE_PY="${PYTHON:-python3}"
VENV="${GPU_CHECK_VENV:-/tmp/sar_lora_dino-gpu}"
WHEELS="${WHEELHOUSE:-$ROOT/wheelhouse}"
SIZE="${GPU_CHECK_SIZE:-800}"
DEMO="${GPU_CHECK_DEMO:-/tmp/sar_lora_dino-gpu-demo}"  # its data stays out of $OUT
export PYTHONPATH="$ROOT" PYTHONUNBUFFERED=1
START=$(date +%s)
STEPS="$OUT_DIR/.steps.tsv"
: >"$STEPS"

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, record status and seconds
    local name=$1 limit=$2 t0 rc
    shift 2
    printf '\n==> [%4ss] %s\n' "$(($(date +%s) - START))" "$name"
    t0=$(date +%s)
    timeout "$limit" bash -c '"$@"' bash "$@"  # a child bash, so that functions can be timed
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$STEPS"
    return 0
}

install() {
    "$BASE_PY" -m venv --system-site-packages "$VENV" || return 1
    local pkgs=(sar_lora_dino)
    "$VENV/bin/python" -c "import detectron2" 2>/dev/null || pkgs+=(pb1-detectron2)
    "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "${pkgs[@]}" || return 1
    "$VENV/bin/python" -m pip check
    "$VENV/bin/python" - <<'PYEOF'
import torch, torchvision, timm, detectron2, faster_coco_eval, sar_lora_dino
print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__)
print("timm", timm.__version__, "detectron2", detectron2.__version__)
print("GPU:", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
assert torch.cuda.is_available()
PYEOF
}

cuda_tests() {
    "$VENV/bin/python" -m pytest -q -m cuda tests
    local rc=$?
    [ $rc -eq 5 ] && echo "no CUDA-marked tests were collected" && return 5
    return $rc
}

bench() {  # bench TAG ARGS...: one benchmark run, JSON into $OUT_DIR/bench_TAG.json
    local tag=$1
    shift
    "$VENV/bin/python" tools/benchmark.py --device cuda --size "$SIZE" --batch 2 --steps 5 \
        --repeats 1 --variants lora full --json "$OUT_DIR/bench_$tag.json" "$@"
}

export BASE_PY VENV WHEELS SIZE OUT_DIR
export -f install cuda_tests bench
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
step install 60 install
step cuda_tests 60 cuda_tests
step amp_training 120 env PY="$VENV/bin/python" DEMO_OUT="$DEMO" DEMO_ITERS=60 \
    DEMO_SIZE=320 DEMO_BATCH=8 DEMO_NUM_TRAIN=64 DEMO_NUM_VAL=16 DEMO_EVAL_PERIOD=60 \
    bash tools/demo.sh train.amp.enabled=True train.amp.dtype=float16 train.device=cuda
step bench_fp16 110 bench fp16 --parts train infer --amp fp16 --infer-size "$SIZE" \
    --variants lora lora_lean full
step bench_fp16_channels_last 50 bench fp16_channels_last --parts train --amp fp16 --channels-last
step bench_bf16 50 bench bf16 --parts train --amp bf16
step bench_eval 30 bench eval --parts eval --eval-backends fast

"$BASE_PY" - "$OUT_DIR" "$STEPS" "$DEMO" <<'PYEOF'
import glob, json, os, sys

out, steps, demo = sys.argv[1:4]
report = {"steps": []}
for line in open(steps):
    name, rc, sec = line.rstrip("\n").split("\t")
    report["steps"].append({"step": name, "exit_status": int(rc), "seconds": int(sec)})
for path in sorted(glob.glob(os.path.join(out, "bench_*.json"))):
    report[os.path.basename(path)[len("bench_"):-len(".json")]] = json.load(open(path))
metrics = os.path.join(demo, "run", "inference", "sardet100k_val", "coco_metrics.json")
if os.path.exists(metrics):
    report["amp_training_metrics"] = json.load(open(metrics))
json.dump(report, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
for s in report["steps"]:
    print(f"{s['step']:<26} exit {s['exit_status']:>3}  {s['seconds']:>4} s")
PYEOF
rm -f "$STEPS"
echo "log: $LOG  json: $OUT_DIR/gpu_check.json  wall: $(($(date +%s) - START)) s"
