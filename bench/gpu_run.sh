#!/usr/bin/env bash
# The GPU figures on the lent machine, from the repository root with gpukit/ carried (make gpu-kit).
#
#   bash bench/gpu_run.sh engine   [gpu_kit run flags]  # parity, first audio, batched throughput (bench.gpu_kit run)
#   bash bench/gpu_run.sh load     [load_bench flags]   # the load sweep over gRPC, up to 512 calls (bench.load_bench)
#   SERVER_ARGS="--cuda-graphs 0" bash bench/gpu_run.sh load   # the same with other server flags (e.g. --dtype float16)
#
# Results go to $OUT (the device tool brings that folder back), else to ./gpu-results.
# PYTHON picks the interpreter (default python3); NO_WHEELS=1 skips installing gpukit/wheels
# (for a dry run on a machine that already has the server's packages).
set -euo pipefail

STAGE=${1:?usage: gpu_run.sh engine|load [flags]}
shift
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-$PWD/gpu-results}
KIT=${KIT:-gpukit}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

# syrinx.server / syrinx.v1 without installing the project: a namespace folder of links.
NAMESPACE=$(mktemp -d)
mkdir -p "$NAMESPACE/syrinx"
ln -s "$PWD/server" "$NAMESPACE/syrinx/server"
ln -s "$PWD/client/_generated/syrinx/v1" "$NAMESPACE/syrinx/v1"
SITE="$NAMESPACE/site"
if [[ "${NO_WHEELS:-0}" != 1 ]]; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$KIT"/wheels/*.whl
fi
export PYTHONPATH="$SITE:$NAMESPACE:$PWD"

"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())'

case "$STAGE" in
engine)
    "$PYTHON" -m bench.gpu_kit run --kit "$KIT" --json "$RESULTS/engine.json" "$@" 2>&1 | tee "$RESULTS/engine.txt"
    ;;
load)
    PORT=${PORT:-50051}
    # shellcheck disable=SC2086  # SERVER_ARGS is a list of flags
    "$PYTHON" -m bench.gpu_kit serve --kit "$KIT" --port "$PORT" --metrics-port -1 ${SERVER_ARGS:-} >"$RESULTS/server.log" 2>&1 &
    SERVER=$!
    trap 'kill "$SERVER" 2>/dev/null || true' EXIT
    for _ in $(seq 1 300); do
        grep -q "serving on port" "$RESULTS/server.log" && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$RESULTS/server.log"; exit 1; }
        sleep 1
    done
    grep -q "serving on port" "$RESULTS/server.log" || { echo "server did not start"; tail "$RESULTS/server.log"; exit 1; }
    "$PYTHON" -m bench.load_bench --address "127.0.0.1:$PORT" --json "$RESULTS/load.json" --plot "$RESULTS/load.png" \
        --concurrency 1,16,64,128,256,512 --duration 20 --warmup 3 "$@" 2>&1 | tee "$RESULTS/load.txt"
    # Memory after the sweep: the server's host side, and the GPU's (the load generator holds none).
    { grep VmRSS "/proc/$SERVER/status" || true; nvidia-smi --query-gpu=memory.used,memory.total --format=csv || true; } \
        2>&1 | tee -a "$RESULTS/load.txt"
    ;;
*)
    echo "unknown stage '$STAGE': engine or load" >&2
    exit 2
    ;;
esac
