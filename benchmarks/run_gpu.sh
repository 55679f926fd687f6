#!/usr/bin/env bash
# Every benchmark of the package on a CUDA device (the quality ones, mode coverage and Stacked MNIST, at a
# small step budget), one JSON line per case, in at most 9 minutes on one data-centre GPU (the time limits
# add up to 545 s; one that runs out says so and the rest go on). Run from the repository root after `pip install -e .` (or `pip install --no-deps -e .` on an
# image that has torch, Lightning and torch-fidelity):
#
#     bash benchmarks/run_gpu.sh [OUT.jsonl]      # default: benchmarks/gpu_results.jsonl
#
# The table in benchmarks/README.md is filled from OUT.jsonl (`device_name` says which GPU it was).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/gpu_results.jsonl}"
: > "$out"
python -c "import torch; assert torch.cuda.is_available(), 'run_gpu.sh needs a CUDA device'" || exit 1

run() {  # run LIMIT_S NAME ARGS...: the benchmark's JSON lines go to $out, the rest to the terminal
    local limit="$1" name="$2"
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" python "$@" | tee /dev/stderr | grep '^{' >> "$out"
    local codes=("${PIPESTATUS[@]}")
    if [ "${codes[0]}" = 124 ]; then
        echo "{\"benchmark\": \"$name\", \"error\": \"ran out of its ${limit} s\"}" >> "$out"
    fi
}

# Steps: eager, steps_per_batch, compiled and captured (CUDA graphs), in fp32 and bf16-mixed; one repeat
# each, as compilation dominates the time.
run 140 step_overhead benchmarks/step_overhead.py --device cuda --repeats 1 --capture
run 90 step_overhead_bf16 benchmarks/step_overhead.py --device cuda --precision bf16-mixed --repeats 1 --no_compile \
    --cases dcgan_28_b64 dcgan_64_b128 sngan_32_b64
run 45 parzen benchmarks/parzen.py --device cuda
run 50 fid benchmarks/fid.py --device cuda --num_samples 512 --batch_size 128
# AIS: batched vs per-point loop and the paper-sized run's cost, on the GPU (no exactness table: CPU-measured).
run 60 ais benchmarks/ais.py --device cuda --parts speed
# Quality benchmarks at a small budget (their full runs take hours / ~15 min; see their docstrings).
run 45 mode_coverage benchmarks/mode_coverage.py --device cuda --seeds 1 --steps 3000 --data grid \
    --recipes vanilla wgan_gp_fresh
if [ -d ../shared/data/MNIST ]; then
    run 40 data_pipeline benchmarks/data_pipeline.py --device cuda
    run 75 stacked_mnist benchmarks/stacked_mnist.py --device cuda --steps 3000 --data_dir ../shared/data
fi
echo "wrote $(wc -l < "$out") result line(s) to $out"
