#!/usr/bin/env bash
# Benchmarks (never part of the tests). Builds release and prints tables to paste into docs/performance.md.
#   scripts/bench.sh [section…]      sections: data, threads, throughput, scaling, accuracy, mpi-accuracy, augmentation, cluster,
#                                    wire, checkpoint, use (use needs checkpoint's files), conv, isa
#                                    (default: data throughput scaling; the others train for real, ~30-40 min each)
#   isa: digits against PyTorch and TensorFlow with both sides capped to one ISA (ISA=avx2, the default;
#        ISA=avx512 or ISA=none runs both sides uncapped), medians of REPS (default 3) alternating runs.
# Every figure is measured in this invocation; speeds are medians of BENCH_RUNS runs (default 5)
# with min-max. The accuracy section trains for real (about half an hour on 2 cores).
# throughput also runs the same models in PyTorch (scripts/torch_bench.py) when the python named by
# TORCH_PYTHON (default python3) can import torch, and in TensorFlow/Keras (scripts/tf_bench.py) when
# TF_PYTHON's can import tensorflow, and prints digits/framework ratios from that run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${BENCH_RUNS:-5}"
sections=("$@"); [ ${#sections[@]} -eq 0 ] && sections=(data throughput scaling)

# BENCH_SCRATCH: the build directory (default .build), for a checkout several people build in.
scratch="${BENCH_SCRATCH:-.build}"
swift build -c release --product digits --scratch-path "$scratch" >/dev/null
bash scripts/fetch-mnist.sh >/dev/null
bin="$scratch/release/digits"
out="$root/runs/bench"; mkdir -p "$out"

# median (min-max) of numbers on stdin
stats() { sort -g | awk -v d="${1:-0}" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
  printf "%.*f (%.*f-%.*f)", d, m, d, v[1], d, v[NR] }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -nE "s/.*\"$1\":([-0-9.e+]+).*/\1/p"; }

bench_data() {
  local inner=() whole=()
  for _ in $(seq "$runs"); do
    local t0 t1 text
    t0=$(date +%s.%N)
    text=$("$bin" inspect-data --data-dir data/mnist)
    t1=$(date +%s.%N)
    inner+=("$(sed -nE 's/.*read and checksummed in ([0-9.]+) s.*/\1/p' <<<"$text")")
    whole+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  done
  echo "### Reading MNIST (4 gzip IDX files, 70,000 images, inflate + validate + SHA-256), $runs runs"
  echo
  echo "| what | seconds, median (min-max) |"
  echo "| --- | --- |"
  echo "| read + verify, inside \`digits inspect-data\` | $(printf '%s\n' "${inner[@]}" | stats 3) |"
  echo "| whole \`digits inspect-data\` process | $(printf '%s\n' "${whole[@]}" | stats 3) |"
  echo
}

bench_throughput() {
  local batch="${BENCH_BATCH:-64}"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local p1 p2 g1 g2
  p1=$(for _ in 1 2 3; do "$bin" bench --fma-peak --threads 1 --json | field fma_gflops; done | median)
  p2=$(for _ in 1 2 3; do "$bin" bench --fma-peak --threads 2 --json | field fma_gflops; done | median)
  g1=$(for _ in 1 2 3; do "$bin" bench --gemm-size 2048 --threads 1 --json | field gflops; done | median)
  g2=$(for _ in 1 2 3; do "$bin" bench --gemm-size 2048 --threads 2 --json | field gflops; done | median)
  echo "### Training throughput, batch $batch per rank, $runs runs each (\`scripts/bench.sh throughput\`)"
  echo
  echo "Measured in this run: fused multiply-add peak $(printf %.0f "$p1") GFLOP/s on 1 core, $(printf %.0f "$p2") on 2;"
  echo "our sgemm 2048³ $(printf %.0f "$g1") GFLOP/s on 1 thread, $(printf %.0f "$g2") on 2; kernel backend: $("$bin" bench --fma-peak --json | sed -nE 's/.*"isa":"([a-z0-9]+)".*/\1/p')."
  echo
  # PyTorch and TensorFlow beside it when importable (TORCH_PYTHON / TF_PYTHON name a python that has
  # them; never a dependency).
  local tpy="${TORCH_PYTHON:-python3}" fpy="${TF_PYTHON:-python3}" torch_version="" tf_version="" ratios=()
  if "$tpy" -c 'import torch' 2>/dev/null; then torch_version=$("$tpy" -c 'import torch; print(torch.__version__)'); fi
  if TF_CPP_MIN_LOG_LEVEL=3 "$fpy" -c 'import tensorflow' 2>/dev/null; then
    tf_version=$(TF_CPP_MIN_LOG_LEVEL=3 "$fpy" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)
  fi
  echo "| model | ranks x threads | training images/s, median (min-max) | GFLOP/s | % of FMA peak | allreduce share | inference images/s (batch $batch) | single-image latency ms | peak RSS per rank MiB |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for model in reference convnet lenet5 default; do
    local -A ours=()
    local steps=150; [ "$model" = lenet5 ] && steps=1000; [ "$model" = convnet ] && steps=400
    for threads in 1 2; do
      local ips=() gfl=() inf=() lat=() last=""
      for _ in $(seq "$runs"); do
        last=$("$bin" bench --model "$model" --threads "$threads" --batch-size "$batch" --steps "$steps" --inference-batch "$batch" \
               --latency-runs 300 --json)
        ips+=("$(field images_per_second <<<"$last")"); gfl+=("$(field gflops <<<"$last")")
        inf+=("$(field inference_images_per_second <<<"$last")"); lat+=("$(field latency_ms <<<"$last")")
      done
      local gm peak
      gm=$(printf '%s\n' "${gfl[@]}" | median)
      ours[train$threads]=$(printf '%s\n' "${ips[@]}" | median)
      ours[inference$threads]=$(printf '%s\n' "${inf[@]}" | median)
      ours[latency$threads]=$(printf '%s\n' "${lat[@]}" | median)
      peak=$([ "$threads" = 1 ] && echo "$p1" || echo "$p2")
      echo "| $model | 1 x $threads | $(printf '%s\n' "${ips[@]}" | stats 0) | $(printf %.0f "$gm") | $(awk -v a="$gm" -v b="$peak" 'BEGIN { printf "%.0f%%", 100 * a / b }') | - | $(printf '%s\n' "${inf[@]}" | stats 0) | $(printf '%s\n' "${lat[@]}" | stats 3) | $(awk -v r="$(field peak_rss <<<"$last")" 'BEGIN { printf "%.0f", r / 1048576 }') |"
    done
    # Two ranks of one thread each (mpirun), the data-parallel way to use both cores.
    local ips=() share=() rss=""
    for _ in $(seq "$runs"); do
      OPENBLAS_NUM_THREADS=1 mpirun -np 2 -x OPENBLAS_NUM_THREADS "$bin" train --data-dir data/mnist --model "$model" \
        --batch-size "$batch" --max-steps "$((steps / 2 + 20))" --no-eval --no-checkpoints --progress never --threads 1 \
        --metrics-out "$out/tp2.jsonl" > /dev/null
      ips+=("$(field images_per_second < "$out/tp2.jsonl")")
      share+=("$(awk -v a="$(field allreduce_seconds < "$out/tp2.jsonl")" -v s="$(field seconds < "$out/tp2.jsonl")" 'BEGIN { print 100 * a / s }')")
      rss=$(field peak_rss_bytes < "$out/tp2.jsonl")
    done
    local im; im=$(printf '%s\n' "${ips[@]}" | median)
    local per_image; per_image=$(field flop_per_image <<<"$last")
    local g2r; g2r=$(awk -v i="$im" -v f="$per_image" 'BEGIN { printf "%.0f", i * f / 1e9 }')
    echo "| $model | 2 x 1 (mpirun) | $(printf '%s\n' "${ips[@]}" | stats 0) | $g2r | $(awk -v a="$g2r" -v b="$p2" 'BEGIN { printf "%.0f%%", 100 * a / b }') | $(printf '%s\n' "${share[@]}" | stats 1)% | - | - | $(awk -v r="$rss" 'BEGIN { printf "%.0f", r / 1048576 }') |"
    ours[ranks2]=$im
    # The same model in each framework present: 1 x 1 and 1 x 2 threads, the same batch and steps, and
    # for PyTorch DDP (gloo) 2 x 1 too.
    local framework
    for framework in torch tf; do
      local py script label
      if [ "$framework" = torch ]; then
        [ -n "$torch_version" ] || continue
        py=$tpy script=scripts/torch_bench.py label="PyTorch $torch_version"
      else
        [ -n "$tf_version" ] || continue
        py=$fpy script=scripts/tf_bench.py label="TensorFlow $tf_version"
      fi
      local -A theirs=()
      for threads in 1 2; do
        local ips=() inf=() lat=() line
        for _ in $(seq "$runs"); do
          line=$(TF_CPP_MIN_LOG_LEVEL=3 "$py" "$script" "$model" --threads "$threads" --batch-size "$batch" --steps "$steps" 2>/dev/null) || line=""
          [ -n "$(field images_per_second <<<"$line")" ] || { echo "bench: $script $model --threads $threads gave no result" >&2; continue; }
          ips+=("$(field images_per_second <<<"$line")"); inf+=("$(field inference_images_per_second <<<"$line")")
          lat+=("$(field latency_ms <<<"$line")")
        done
        [ ${#ips[@]} -gt 0 ] || { echo "bench: no $label run of $model gave a result; its rows are left out" >&2; continue 2; }
        local tm; tm=$(printf '%s\n' "${ips[@]}" | median)
        theirs[train$threads]=$tm
        theirs[inference$threads]=$(printf '%s\n' "${inf[@]}" | median)
        theirs[latency$threads]=$(printf '%s\n' "${lat[@]}" | median)
        local tg; tg=$(awk -v i="$tm" -v f="$per_image" 'BEGIN { printf "%.0f", i * f / 1e9 }')
        peak=$([ "$threads" = 1 ] && echo "$p1" || echo "$p2")
        echo "| $model, $label | 1 x $threads | $(printf '%s\n' "${ips[@]}" | stats 0) | $tg | $(awk -v a="$tg" -v b="$peak" 'BEGIN { printf "%.0f%%", 100 * a / b }') | - | $(printf '%s\n' "${inf[@]}" | stats 0) | $(printf '%s\n' "${lat[@]}" | stats 3) | - |"
      done
      theirs[ranks2]=0
      if [ "$framework" = torch ]; then
        local ips=()
        for _ in $(seq "$runs"); do
          line=$("$tpy" scripts/torch_bench.py "$model" --ddp 2 --batch-size "$batch" --steps "$steps") || line=""
          [ -n "$(field images_per_second <<<"$line")" ] || { echo "bench: torch_bench.py $model --ddp 2 gave no result" >&2; continue; }
          ips+=("$(field images_per_second <<<"$line")")
        done
        if [ ${#ips[@]} -gt 0 ]; then
          theirs[ranks2]=$(printf '%s\n' "${ips[@]}" | median)
          local tg; tg=$(awk -v i="${theirs[ranks2]}" -v f="$per_image" 'BEGIN { printf "%.0f", i * f / 1e9 }')
          echo "| $model, $label | 2 x 1 (DDP, gloo) | $(printf '%s\n' "${ips[@]}" | stats 0) | $tg | $(awk -v a="$tg" -v b="$p2" 'BEGIN { printf "%.0f%%", 100 * a / b }') | - | - | - | - |"
        fi
      fi
      # Best use of 2 cores on each side: 1 x 2 or 2 ranks; latency: the better of 1 and 2 threads on each side.
      ratios+=("$(awk -v m="$model" -v f="$label" -v a1="${ours[train1]}" -v b1="${theirs[train1]}" -v a2="${ours[train2]}" \
        -v b2="${theirs[train2]}" -v ar="${ours[ranks2]}" -v br="${theirs[ranks2]}" -v ai="${ours[inference2]}" \
        -v bi="${theirs[inference2]}" -v al1="${ours[latency1]}" -v al2="${ours[latency2]}" -v bl1="${theirs[latency1]}" \
        -v bl2="${theirs[latency2]}" 'BEGIN {
          best_a = a2 > ar ? a2 : ar; best_b = b2 > br ? b2 : br
          al = al1 < al2 ? al1 : al2; bl = bl1 < bl2 ? bl1 : bl2
          printf "| %s | %s | %.2fx | %.2fx | %.2fx | %.2fx | %.3f / %.3f ms = %.2fx |", m, f, a1 / b1, a2 / b2, best_a / best_b, ai / bi, bl, al, bl / al }')")
    done
  done
  echo
  echo "(GFLOP/s counts training as 3 x the forward multiply-adds x 2, for the other frameworks' rows too.)"
  echo
  if [ ${#ratios[@]} -gt 0 ]; then
    echo "digits / other framework, same run (above 1 means digits is faster):"
    echo
    echo "| model | against | training 1 x 1 | training 1 x 2 | training, best use of 2 cores (1 x 2 or 2 ranks, each side) | inference, batch $batch, 2 threads | single-image latency, best of 1 and 2 threads (theirs / ours) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${ratios[@]}"
  fi
  [ -n "$torch_version" ] || echo "(PyTorch is not importable here, so no PyTorch rows; set TORCH_PYTHON to a python that has torch.)"
  [ -n "$tf_version" ] || echo "(TensorFlow is not importable here, so no TensorFlow rows; set TF_PYTHON to a python that has tensorflow.)"
  echo
}

# Data-parallel scaling on this machine: 1 rank x 1 thread against mpirun -np 2 x 1 thread.
bench_scaling() {
  local model="${BENCH_MODEL:-reference}" steps="${BENCH_STEPS:-200}"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local train=("$bin" train --model "$model" --max-steps "$steps" --no-eval --no-checkpoints --progress never --threads 1 --data-dir data/mnist)
  local one=() two=() share1=() share2=() bytes=""
  for i in $(seq "$runs"); do
    # Alternate the two so drift on this shared machine hits both alike.
    OPENBLAS_NUM_THREADS=1 "${train[@]}" --metrics-out "$out/scale1.jsonl" > "$out/scale1.txt"
    OPENBLAS_NUM_THREADS=1 mpirun -np 2 -x OPENBLAS_NUM_THREADS "${train[@]}" --metrics-out "$out/scale2.jsonl" > "$out/scale2.txt"
    one+=("$(field images_per_second < "$out/scale1.jsonl")")
    two+=("$(field images_per_second < "$out/scale2.jsonl")")
    share2+=("$(awk -v a="$(field allreduce_seconds < "$out/scale2.jsonl")" -v s="$(field seconds < "$out/scale2.jsonl")" 'BEGIN { print 100 * a / s }')")
    bytes=$(sed -nE 's/^allreduce: ([0-9]+) bytes.*/\1/p' "$out/scale2.txt")
  done
  local m1 m2
  m1=$(printf '%s\n' "${one[@]}" | median); m2=$(printf '%s\n' "${two[@]}" | median)
  echo "### Data-parallel scaling, \`$model\`, batch 64 per rank, $steps steps, $runs runs each (alternating)"
  echo
  echo "| ranks x BLAS threads | images/s, median (min-max) | speed-up | allreduce share of the step | gradient bytes per rank per step |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| 1 x 1 | $(printf '%s\n' "${one[@]}" | stats 0) | 1.00x | - | - |"
  echo "| 2 x 1 (mpirun -np 2) | $(printf '%s\n' "${two[@]}" | stats 0) | $(awk -v a="$m2" -v b="$m1" 'BEGIN { printf "%.2fx", a / b }') | $(printf '%s\n' "${share2[@]}" | stats 1)% | $bytes |"
  echo
}

# The test accuracy of a run (its metrics' final line: scored once, after the last epoch), the
# last epoch's validation accuracy, and the best epoch chosen on validation.
test_of() { grep '"final":true' "$1" | field test_accuracy | awk '{ printf "%.2f%%", 100 * $1 }'; }
validation_of() { grep -v '"final":true' "$1" | tail -1 | field validation_accuracy | awk '{ printf "%.2f%%", 100 * $1 }'; }
best_validation_of() {
  grep -v '"final":true' "$1" | awk '{ match($0, /"validation_accuracy":[-0-9.e+]+/); v = substr($0, RSTART + 22, RLENGTH - 22);
    match($0, /"epoch":[0-9]+/); e = substr($0, RSTART + 8, RLENGTH - 8); if (v + 0 > best) { best = v + 0; at = e } }
    END { printf "epoch %d (%.2f%%)", at, 100 * best }'
}

# Trains for real: validation accuracy per epoch (5,000 training images held out), the test set once, at the end.
bench_accuracy() {
  local threads="${BENCH_THREADS:-2}"
  echo "### Accuracy (one run each, seed 1, $threads BLAS threads, no augmentation; 55,000 training images, 5,000 held out for validation, the 10,000 test images scored once, after the last epoch)"
  echo
  echo "| model | recipe | epochs | test accuracy | last epoch's validation accuracy | best epoch on validation | wall seconds |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  run() { # name epochs recipe…
    local model="$1" epochs="$2"; shift 2
    local log="$out/accuracy-$model-$epochs.jsonl" t0 t1
    t0=$(date +%s.%N)
    "$bin" train --model "$model" --epochs "$epochs" --threads "$threads" --no-checkpoints --metrics-out "$log" "$@" > "$log.txt"
    t1=$(date +%s.%N)
    echo "| $model | $* | $epochs | $(test_of "$log") | $(validation_of "$log") | $(best_validation_of "$log") | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') |"
  }
  run seed-mlp 3 --optimizer adam --batch-size 32 --lr 1e-3 --schedule constant
  run seed-mlp 3 --optimizer adam --batch-size 32
  run reference 2
  run default 2
  run reference 10
  run default 10
  echo
  echo "(recipe: digits train defaults unless shown: adam, lr 2e-3, one-cycle, batch 64)"
}

# Trains `default` under mpirun -np 2 and reports test accuracy per run (the data-parallel target).
mpi_run() { # label epochs log-name train-args…
  local label="$1" epochs="$2" name="$3"; shift 3
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local log="$out/$name.jsonl" t0 t1
  rm -f "$log"
  t0=$(date +%s.%N)
  OPENBLAS_NUM_THREADS=1 mpirun -np 2 -x OPENBLAS_NUM_THREADS "$bin" train --model "${MPI_MODEL:-default}" --epochs "$epochs" --threads 1 \
    --progress never --no-checkpoints --metrics-out "$log" "$@" > "$log.txt"
  t1=$(date +%s.%N)
  echo "| $label | $epochs | $(test_of "$log") | $(validation_of "$log") | $(best_validation_of "$log") | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') |"
}

bench_mpi_accuracy() {
  echo "### \`default\` under mpirun -np 2 x 1 thread (batch 64 per rank, 128 global; adam, lr 2e-3, one-cycle)"
  echo
  echo "| run | epochs | test accuracy (once, at the end) | last epoch's validation accuracy | best epoch on validation | wall seconds |"
  echo "| --- | --- | --- | --- | --- | --- |"
  mpi_run "no augmentation" 2 mpi-default-2
  mpi_run "no augmentation, fp16 gradients in 256 KiB buckets" 2 mpi-default-2-fp16 --gradient-compression fp16 --bucket-kb 256
  MPI_MODEL=reference mpi_run "\`reference\`, no augmentation" 2 mpi-reference-2
  # The linear scaling rule for the global batch of 128 (peak lr 4e-3), as the augmentation runs use.
  mpi_run "no augmentation, --lr-scaling linear (peak lr 4e-3)" 2 mpi-default-2-linear --lr-scaling linear
  MPI_MODEL=reference mpi_run "\`reference\`, no augmentation, --lr-scaling linear (peak lr 4e-3)" 2 mpi-reference-2-linear \
    --lr-scaling linear
  echo
  # Time to 99.0%: seconds of training and evaluation (as the metrics count them, launch and data
  # loading excluded on both sides) to the end of the first epoch whose evaluation is at or above
  # 99.0%: digits' on its 5,000 held-out validation images (it scores the test set only at the
  # end), PyTorch's script on the test set.
  local -A ours=()
  for name in mpi-default-2 mpi-default-2-fp16 mpi-reference-2 mpi-default-2-linear mpi-reference-2-linear; do
    ours[$name]=$(awk -F'"validation_accuracy":' '{ split($2, a, ","); split($0, b, "\"seconds\":"); split(b[2], c, ",");
         split($0, e, "\"evaluation_seconds\":"); split(e[2], f, ",");
         t += c[1] + f[1]; if (!done && a[1] >= 0.99) { printf "%.1f", t; done = 1 } } END { if (!done) print "-" }' "$out/$name.jsonl")
    echo "$name: 99.0% $([ "${ours[$name]}" = - ] && echo "not reached" || echo "first reached after ${ours[$name]} s of training and evaluation")"
  done
  echo
  # The same recipe in PyTorch DDP (gloo, 2 ranks x 1 thread) when torch is importable (TORCH_PYTHON).
  local tpy="${TORCH_PYTHON:-python3}"
  "$tpy" -c 'import torch' 2>/dev/null || { echo "(PyTorch is not importable here: no PyTorch time to 99.0%; set TORCH_PYTHON.)"; echo; return; }
  echo "| model | peak lr | digits, mpirun 2 x 1: seconds to 99.0% | PyTorch $("$tpy" -c 'import torch; print(torch.__version__)') DDP 2 x 1: test accuracy per epoch | seconds to 99.0% | digits / PyTorch time |"
  echo "| --- | --- | --- | --- | --- | --- |"
  local model line recipe lr suffix
  for recipe in "2e-3 " "4e-3 -linear"; do
    read -r lr suffix <<<"$recipe"
    for model in default reference; do
      line=$(OMP_NUM_THREADS=1 "$tpy" scripts/torch_accuracy.py "$model" --data-dir data/mnist --epochs 2 --ranks 2 --lr "$lr" 2>/dev/null)
      local per_epoch theirs mine="${ours[mpi-$model-2$suffix]}"
      per_epoch=$(field test_accuracy <<<"$line" | awk '{ sep = (NR > 1) ? ", " : ""; printf "%s%.2f%%", sep, 100 * $1 }')
      theirs=$(sed -nE 's/.*"seconds_to_target":([0-9.]+).*/\1/p' <<<"$line"); theirs=${theirs:--}
      echo "| $model | $lr | $mine | $per_epoch | $(awk -v b="$theirs" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b }') | $(awk -v a="$mine" -v b="$theirs" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", a / b }') |"
    done
  done
  echo
}

bench_augmentation() {
  local epochs="${BENCH_AUG_EPOCHS:-20}"
  # --lr-scaling linear: peak 2e-3 x 128 / 64 = 4e-3 for the global batch of 128 (Goyal et al.).
  local recipe=(--lr-scaling linear)
  echo "### Augmentation: \`default\`, mpirun -np 2 x 1 thread, $epochs epochs, the same schedule (adam, peak lr 4e-3 = 2e-3 x 128/64 by --lr-scaling linear, one-cycle, batch 64 per rank)"
  echo
  echo "| run | epochs | test accuracy (once, at the end) | last epoch's validation accuracy | best epoch on validation | wall seconds |"
  echo "| --- | --- | --- | --- | --- | --- |"
  mpi_run "--augment default (rotation ±10°, scale ±10%, shift ±2 px)" "$epochs" aug-default "${recipe[@]}" --augment default
  mpi_run "--augment none" "$epochs" aug-none "${recipe[@]}" --augment none
  mpi_run "--augment default --elastic 34,4" "$epochs" aug-elastic "${recipe[@]}" --augment default --elastic 34,4
  echo
}

# Gradient exchange on simulated hosts at 1 Gbit/s: plain Float32 allreduce after backward, fp16,
# buckets overlapped with backward, and both. Efficiency = compute / (compute + allreduce wait) per
# step on rank 0: what data-parallel scaling keeps when every host computes at the same speed.
bench_wire() {
  local steps="${BENCH_STEPS:-80}" hosts="${BENCH_HOSTS:-4}"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  bash cluster/simulate.sh up "$hosts" --rate 1gbit > /dev/null
  trap 'bash cluster/simulate.sh down > /dev/null' RETURN
  local sim=/tmp/digits-sim
  local mpi=(mpirun --hostfile "$sim/hostfile" -np "$hosts" --mca plm_rsh_agent "$sim/rsh" --mca btl tcp,self,vader --mca rtc_hwloc_vmhole none
             --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none -x OPENBLAS_NUM_THREADS=1)
  # The simulated hosts share this machine's cores. Open MPI yields the core while it waits only when
  # it knows a node is oversubscribed, and each simulated host has one slot of its own: without this,
  # a rank waiting for the exchange spins on a core another host's rank needs for its compute.
  mpi+=(--mca mpi_yield_when_idle 1)
  [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
  echo "### Gradient exchange, $hosts simulated hosts (namespaces, 1 Gbit/s tbf links), 1 rank x 1 thread each, $steps steps, $runs runs each"
  echo
  echo "| model | exchange | bytes per rank per step | allreduce wait ms per step | compute ms per step | efficiency, median (min-max) |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for model in default reference; do
    for mode in "none 0" "fp16 0" "none 256" "fp16 256"; do
      set -- $mode
      local waits=() computes=() effs=() bytes=""
      for _ in $(seq "$runs"); do
        "${mpi[@]}" "$bin" train --data-dir "$root/data/mnist" --model "$model" --max-steps "$steps" --no-eval --no-checkpoints \
          --progress never --gradient-compression "$1" --bucket-kb "$2" --metrics-out "$out/wire.jsonl" > "$out/wire.txt"
        bytes=$(sed -nE 's/^allreduce: ([0-9]+) bytes.*/\1/p' "$out/wire.txt")
        local a c
        a=$(field allreduce_seconds < "$out/wire.jsonl"); c=$(field compute_seconds < "$out/wire.jsonl")
        waits+=("$(awk -v a="$a" -v n="$steps" 'BEGIN { print 1000 * a / n }')")
        computes+=("$(awk -v c="$c" -v n="$steps" 'BEGIN { print 1000 * c / n }')")
        effs+=("$(awk -v a="$a" -v c="$c" 'BEGIN { print 100 * c / (c + a) }')")
      done
      local label="float32, one allreduce after backward"
      [ "$1" = fp16 ] && label="fp16, one allreduce after backward"
      [ "$2" != 0 ] && label="$([ "$1" = fp16 ] && echo fp16 || echo float32), ${2} KiB buckets overlapped"
      echo "| $model | $label | $bytes | $(printf '%s\n' "${waits[@]}" | stats 2) | $(printf '%s\n' "${computes[@]}" | stats 1) | $(printf '%s\n' "${effs[@]}" | stats 0)% |"
    done
  done
  echo
  if [ "$hosts" -gt 2 ]; then
    echo "($hosts ranks share this machine's 2 cores, so compute per step is about $((hosts / 2)) times a lone core's; the wait is what the network and the reduction add on top. Waiting ranks yield their core: mpi_yield_when_idle.)"
  else
    echo "(Each rank has a core of its own: the wait is what the network and the reduction add.)"
  fi
}

# Simulated hosts (network namespaces, links shaped to 1 Gbit/s): allreduce cost per step and
# training throughput for 1, 2 and 4 hosts. Needs root and ip netns.
bench_cluster() {
  local steps="${BENCH_STEPS:-60}"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  bash cluster/simulate.sh up 4 --rate 1gbit > /dev/null
  trap 'bash cluster/simulate.sh down > /dev/null' RETURN
  local sim=/tmp/digits-sim
  echo "### Simulated cluster: hosts in network namespaces, links shaped to 1 Gbit/s (tbf), 1 rank x 1 thread per host, $runs runs each"
  echo
  echo "| hosts | model | gradient bytes per rank per step | allreduce ms per step, median (min-max) | training images/s (2 real cores shared) | compute ms per step on 1 core | predicted images/s with one core per host |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for model in default reference; do
    local floats; floats=$("$bin" train --model "$model" --max-steps 1 --no-eval --no-checkpoints --progress never | sed -nE 's/.*\(([0-9]+) parameters.*/\1/p')
    local compute
    compute=$(OPENBLAS_NUM_THREADS=1 "$bin" bench --model "$model" --steps 40 --json | sed -nE 's/.*"step_ms":([0-9.]+).*/\1/p')
    for hosts in 1 2 4; do
      head -n "$hosts" "$sim/hostfile" > "$sim/hosts$hosts"
      local mpi=(mpirun --hostfile "$sim/hosts$hosts" -np "$hosts" --mca plm_rsh_agent "$sim/rsh" --mca btl tcp,self,vader
                 --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none -x OPENBLAS_NUM_THREADS=1)
      [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
      local ar=() ips=()
      for _ in $(seq "$runs"); do
        ar+=("$("${mpi[@]}" "$bin" bench --allreduce-floats "$floats" --steps 30 --json | sed -nE 's/.*"median_seconds":([0-9.e-]+).*/\1/p' | awk '{ print 1000 * $1 }')")
        "${mpi[@]}" "$bin" train --data-dir "$root/data/mnist" --model "$model" --max-steps "$steps" --no-eval --no-checkpoints \
          --progress never --metrics-out "$out/cluster.jsonl" > /dev/null
        ips+=("$(field images_per_second < "$out/cluster.jsonl")")
      done
      local arm; arm=$(printf '%s\n' "${ar[@]}" | median)
      echo "| $hosts | $model | $((floats * 4)) | $(printf '%s\n' "${ar[@]}" | stats 2) | $(printf '%s\n' "${ips[@]}" | stats 0) | $(printf %.1f "$compute") | $(awk -v h="$hosts" -v c="$compute" -v a="$arm" 'BEGIN { printf "%.0f (%.0f%% efficiency)", h * 64 * 1000 / (c + a), 100 * c / (c + a) }') |"
    done
  done
  echo
  echo "(allreduce measured alone with \`digits bench --allreduce-floats\`; compute measured alone on one core; the prediction assumes no overlap: step = compute + allreduce)"
}

# Checkpoint size and write time for `default`, and the time from start to the first resumed step.
bench_checkpoint() {
  local dir="$out/ck-bench" writes=() firsts=() wholes=() size=""
  for _ in $(seq "$runs"); do
    rm -rf "$dir"
    "$bin" train --model default --epochs 2 --checkpoint-every 20 --checkpoint-dir "$dir" --stop-at-step 200 --no-eval \
      --progress never > "$out/ck-write.txt"
    writes+=("$(sed -nE 's/.*median ([0-9.]+) ms to write.*/\1/p' "$out/ck-write.txt")")
    size=$(sed -nE 's/.*written, ([0-9]+) bytes each.*/\1/p' "$out/ck-write.txt")
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" train --model default --epochs 2 --checkpoint-every 20 --checkpoint-dir "$dir" --resume --stop-at-step 202 --no-eval \
      --progress never > "$out/ck-resume.txt"
    t1=$(date +%s.%N)
    firsts+=("$(sed -nE 's/first resumed step done ([0-9.]+) s.*/\1/p' "$out/ck-resume.txt")")
    wholes+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  done
  echo "### Checkpoints of \`default\` (parameters, BatchNorm buffers, Adam moments), $runs runs"
  echo
  echo "| what | value, median (min-max) |"
  echo "| --- | --- |"
  echo "| checkpoint size | $size bytes |"
  echo "| write (buffers averaged, encode, SHA-256, write, fsync, rename, fsync dir), ms | $(printf '%s\n' "${writes[@]}" | stats 1) |"
  echo "| process start to first resumed step done, s | $(printf '%s\n' "${firsts[@]}" | stats 3) |"
  echo "| whole resumed process (2 steps, one checkpoint), s | $(printf '%s\n' "${wholes[@]}" | stats 3) |"
  echo
}

# Winograd against the direct convolution per layer shape (scripts/conv_bench.c on the CKernels
# sources): the shapes of the presets' Winograd layers and the small ones that decide where digits
# uses it (from 16 channels in and out). One thread, batch 8.
bench_conv() {
  local exe="$out/conv_bench" src=Sources/CKernels
  # shellcheck disable=SC2046
  "${CC:-clang}" -O3 -std=gnu11 -I "$src/include" -I "$src" scripts/conv_bench.c $(find "$src" -name '*.c' | sort) \
    -lpthread -lm -o "$exe"
  # The CPU's own table, and on an AVX-512 CPU the AVX2 one too (what CPUs without AVX-512 take).
  local isas=("") isa shape
  grep -q '^flags.* avx512f' /proc/cpuinfo && isas+=(avx2)
  for isa in "${isas[@]}"; do
    echo "### Winograd against the direct convolution, one thread, forward, kernel table $(DIGITS_ISA=$isa "$bin" bench --fma-peak --json | sed -nE 's/.*"isa":"([^"]*)".*/\1/p') (\`scripts/bench.sh conv\`)"
    echo
    echo "| layer (channels in -> out, image, kernel) | largest difference from the double-precision sum | direct ms | Winograd ms | speed-up |"
    echo "| --- | --- | --- | --- | --- |"
    for shape in "32 64 14 14 3 1 8" "64 64 14 14 3 1 8" "64 32 14 14 3 1 8" "32 64 14 14 5 2 8" "64 32 14 14 5 2 8" \
                 "32 64 13 13 3 0 8" "64 32 11 11 3 2 8" "32 32 28 28 3 1 4" \
                 "16 16 14 14 3 1 8" "16 16 14 14 5 2 8" "16 8 14 14 3 1 8" "8 16 14 14 3 1 8" "8 16 14 14 5 2 8" "4 16 14 14 3 1 8"; do
      # shellcheck disable=SC2086
      DIGITS_ISA=$isa "$exe" $shape || true
    done
    echo
  done
}

# predict and evaluate speed with the checkpoint bench_checkpoint leaves.
bench_use() {
  local ck="$out/ck-bench/$(cat "$out/ck-bench/latest")" wholes=() models=() e1=() e2=()
  "$bin" sample-images --count 1 --out "$out/one" > /dev/null
  local image; image=$(ls "$out"/one/*.png | head -1)
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  for _ in $(seq "$runs"); do
    local t0 t1 j
    t0=$(date +%s.%N); j=$("$bin" predict --checkpoint "$ck" --json "$image"); t1=$(date +%s.%N)
    wholes+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print 1000 * (b - a) }')")
    models+=("$(field model_seconds <<<"$j" | awk '{ print 1000 * $1 }')")
    e1+=("$(OPENBLAS_NUM_THREADS=1 "$bin" evaluate --checkpoint "$ck" --json | field images_per_second)")
    e2+=("$(OPENBLAS_NUM_THREADS=1 mpirun -np 2 -x OPENBLAS_NUM_THREADS "$bin" evaluate --checkpoint "$ck" --json | field images_per_second)")
  done
  echo "### Using a trained \`default\` model, $runs runs"
  echo
  echo "| what | median (min-max) |"
  echo "| --- | --- |"
  echo "| \`digits predict\` of one PNG, whole process, ms | $(printf '%s\n' "${wholes[@]}" | stats 1) |"
  echo "| of which the model (normalise + forward + softmax), ms | $(printf '%s\n' "${models[@]}" | stats 3) |"
  echo "| \`digits evaluate\`, 10,000 test images, 1 rank, images/s | $(printf '%s\n' "${e1[@]}" | stats 0) |"
  echo "| \`mpirun -np 2 digits evaluate\`, images/s | $(printf '%s\n' "${e2[@]}" | stats 0) |"
  echo
}

# Two cores used two ways, on each kernel path this CPU can take (its own, and on an AVX-512 CPU the
# portable OpenBLAS path with OpenBLAS's Haswell kernels, what an AVX2 CPU gets): `digits bench`
# with --threads 2 against --threads 1, and `mpirun -np 2 digits train --threads 1` against one rank,
# all four alternating, BENCH_RUNS runs each (default 5); BENCH_MODEL (default `default`).
bench_threads() {
  local model="${BENCH_MODEL:-default}" steps=150
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local paths=("")
  if grep -q '^flags.* avx512f' /proc/cpuinfo; then
    paths+=("DIGITS_GEMM=openblas$([ -z "${OPENBLAS_CORETYPE:-}" ] && echo " OPENBLAS_CORETYPE=Haswell")")
  fi
  local cpu; cpu=$(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1)
  echo "### Two cores: threads and ranks, \`$model\`, batch 64 per rank, $runs runs each, alternating (\`scripts/bench.sh threads\`)"
  echo
  echo "CPU: $cpu, $(grep -q '^flags.* avx512f' /proc/cpuinfo && echo "with AVX-512" || echo "without AVX-512")."
  echo
  echo "| kernel path | bench, 1 thread | bench, 2 threads | 2 threads / 1 | train, 1 rank x 1 thread | mpirun -np 2 x 1 thread | 2 ranks / 1 |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  local path
  for path in "${paths[@]}"; do
    local settings=() exported=()
    read -r -a settings <<<"$path"
    for setting in "${settings[@]}"; do exported+=(-x "${setting%%=*}"); done
    local b1=() b2=() r1=() r2=()
    for _ in $(seq "$runs"); do
      b1+=("$(env "${settings[@]}" OPENBLAS_NUM_THREADS=1 "$bin" bench --model "$model" --threads 1 --steps "$steps" --json | field images_per_second)")
      b2+=("$(env "${settings[@]}" OPENBLAS_NUM_THREADS=1 "$bin" bench --model "$model" --threads 2 --steps "$steps" --json | field images_per_second)")
      env "${settings[@]}" OPENBLAS_NUM_THREADS=1 "$bin" train --data-dir data/mnist --model "$model" --max-steps "$steps" --no-eval \
        --no-checkpoints --progress never --threads 1 --metrics-out "$out/th1.jsonl" > /dev/null
      r1+=("$(field images_per_second < "$out/th1.jsonl")")
      env "${settings[@]}" OPENBLAS_NUM_THREADS=1 mpirun -np 2 -x OPENBLAS_NUM_THREADS "${exported[@]}" "$bin" train --data-dir data/mnist \
        --model "$model" --max-steps "$steps" --no-eval --no-checkpoints --progress never --threads 1 --metrics-out "$out/th2.jsonl" > /dev/null
      r2+=("$(field images_per_second < "$out/th2.jsonl")")
    done
    local mb1 mb2 mr1 mr2
    mb1=$(printf '%s\n' "${b1[@]}" | median); mb2=$(printf '%s\n' "${b2[@]}" | median)
    mr1=$(printf '%s\n' "${r1[@]}" | median); mr2=$(printf '%s\n' "${r2[@]}" | median)
    local label="$path"
    [ -n "$label" ] || label="the CPU's own: $("$bin" bench --fma-peak --json | sed -nE 's/.*"isa":"([a-z0-9]+)".*/\1/p')"
    echo "| $label | $(printf '%s\n' "${b1[@]}" | stats 0) | $(printf '%s\n' "${b2[@]}" | stats 0) | $(awk -v a="$mb2" -v b="$mb1" 'BEGIN { printf "%.2fx", a / b }') | $(printf '%s\n' "${r1[@]}" | stats 0) | $(printf '%s\n' "${r2[@]}" | stats 0) | $(awk -v a="$mr2" -v b="$mr1" 'BEGIN { printf "%.2fx", a / b }') |"
  done
  echo
}

# digits against PyTorch and TensorFlow with every side held to one instruction set on this CPU.
# ISA=avx2 (default): digits with DIGITS_ISA=avx2; PyTorch with ATEN_CPU_CAPABILITY=avx2
# ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2; TensorFlow with TF_ENABLE_ONEDNN_OPTS=1
# ONEDNN_MAX_CPU_ISA=AVX2. ISA=avx512 (digits with DIGITS_ISA=avx512) or ISA=none: no caps on any side.
# Each of REPS repetitions (default 3) runs every program once, model by model and alternating
# programs, so drift on a shared machine hits all alike; medians over the repetitions. Training
# throughput at batch 64, timed as the throughput section times it (with half its steps). PyTorch "tuned" =
# channels-last model and inputs + glibc malloc kept from giving memory back (MALLOC_MMAP_MAX_=0
# MALLOC_TRIM_THRESHOLD_=100000000000); "untuned" = default memory format and malloc. A single-process
# PyTorch run stops timing after 20 s (its 1 x 2 OpenMP runs crawl when another program takes a core).
# TORCH_PYTHON / TF_PYTHON: the pythons that import torch / tensorflow (default python3).
# ISA_MODELS (default "default reference convnet lenet5"); ISA_TF_MODELS (TensorFlow runs, default
# "convnet lenet5"); ISA_UNTUNED_MODELS (untuned PyTorch 1 x 1 runs, default "default reference"); empty: none.
bench_isa() {
  local reps="${REPS:-3}" batch=64 isa="${ISA:-avx2}" started=$SECONDS load0
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  local models=(${ISA_MODELS:-default reference convnet lenet5})
  local tf_models=" ${ISA_TF_MODELS-convnet lenet5} " untuned_models=" ${ISA_UNTUNED_MODELS-default reference} "   # set empty: none
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local digits_env=() torch_env=() tf_env=(TF_ENABLE_ONEDNN_OPTS=1) cap_label
  case "$isa" in
    avx2) digits_env=(DIGITS_ISA=avx2)
          torch_env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2)
          tf_env+=(ONEDNN_MAX_CPU_ISA=AVX2); cap_label="capped to AVX2" ;;
    avx512) digits_env=(DIGITS_ISA=avx512); cap_label="uncapped (digits DIGITS_ISA=avx512)" ;;
    none) cap_label="uncapped" ;;
    *) echo "bench: ISA must be avx2, avx512 or none (got '$isa')" >&2; return 2 ;;
  esac
  local unset_caps=(-u DIGITS_ISA -u ATEN_CPU_CAPABILITY -u ONEDNN_MAX_CPU_ISA -u MKL_ENABLE_INSTRUCTIONS
                    -u MALLOC_MMAP_MAX_ -u MALLOC_TRIM_THRESHOLD_)
  local tuned=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000)
  local tpy="${TORCH_PYTHON:-python3}" fpy="${TF_PYTHON:-python3}" torch_version="" tf_version=""
  if "$tpy" -c 'import torch' 2>/dev/null; then torch_version=$("$tpy" -c 'import torch; print(torch.__version__)'); fi
  if TF_CPP_MIN_LOG_LEVEL=3 "$fpy" -c 'import tensorflow' 2>/dev/null; then
    tf_version=$(TF_CPP_MIN_LOG_LEVEL=3 "$fpy" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)
  fi

  # What each side runs on: the CPU, digits' kernels, ATen's dispatch level and oneDNN's ISA.
  local cpu family cpumodel avx512
  cpu=$(lscpu | sed -nE 's/^Model name:\s+//p' | head -1)
  family=$(lscpu | sed -nE 's/^CPU family:\s+//p' | head -1); cpumodel=$(lscpu | sed -nE 's/^Model:\s+//p' | head -1)
  avx512=$(grep -q '^flags.* avx512f' /proc/cpuinfo && echo "with AVX-512 (avx512f)" || echo "without AVX-512")
  local probe fma digits_isa backend
  probe=$(env "${unset_caps[@]}" "${digits_env[@]}" "$bin" bench --model default --steps 2 --warmup-steps 1 --json)
  fma=$(env "${unset_caps[@]}" "${digits_env[@]}" "$bin" bench --fma-peak --json)
  digits_isa=$(sed -nE 's/.*"isa":"([^"]*)".*/\1/p' <<<"$probe$fma" | head -1)
  backend=$(sed -nE 's/.*"isa":"([^"]*)".*/\1/p' <<<"$fma")
  local digits_note
  norm() { tr 'A-Z' 'a-z' <<<"$1" | tr -d '_ -'; }
  if [ -z "$digits_isa" ]; then
    digits_note="digits' \`bench --json\` has no \"isa\" field, so this binary does not know DIGITS_ISA"
    [ ${#digits_env[@]} -gt 0 ] && digits_note+=": ${digits_env[*]} was NOT recognised and digits ran its own kernels (fma-peak backend $backend)" \
      || digits_note+="; it ran its own kernels (fma-peak backend $backend)"
    [ "$isa" = avx2 ] && digits_note+=". The digits figures below are not AVX2-capped"
  elif [ ${#digits_env[@]} -gt 0 ] && [[ "$(norm "$digits_isa")" != "$(norm "$isa")"* ]]; then
    digits_note="digits did NOT take ${digits_env[*]}: it reports isa \"$digits_isa\" (fma-peak backend $backend)"
  else
    digits_note="digits reports isa \"$digits_isa\"${digits_env:+ under ${digits_env[*]}} (fma-peak backend $backend)"
  fi
  local torch_check="" tf_check=""
  if [ -n "$torch_version" ]; then
    torch_check=$(env "${unset_caps[@]}" "${torch_env[@]}" ONEDNN_VERBOSE=1 "$tpy" -c '
import torch
c = torch.nn.Conv2d(1, 8, 5).to(memory_format=torch.channels_last)
c(torch.rand(8, 1, 28, 28).contiguous(memory_format=torch.channels_last))
print("capability:" + torch.backends.cpu.get_cpu_capability())' 2>&1 |
      sed -nE 's/^capability:(.*)/get_cpu_capability() = \1/p; s/^onednn_verbose.*,cpu,isa:(.*)/oneDNN ISA: \1/p' | sort | paste -sd';' - | sed 's/;/; /g')
  fi
  if [ -n "$tf_version" ]; then
    tf_check=$(env "${unset_caps[@]}" "${tf_env[@]}" ONEDNN_VERBOSE=1 TF_CPP_MIN_LOG_LEVEL=3 "$fpy" -c '
import tensorflow as tf
tf.keras.layers.Conv2D(8, 5)(tf.random.uniform((8, 28, 28, 1)))' 2>&1 | sed -nE 's/^onednn_verbose.*,cpu,isa:(.*)/oneDNN ISA: \1/p' | head -1)
    tf_check=${tf_check:-"oneDNN not used (no oneDNN verbose output)"}
  fi

  local -A v=() flop=()
  add() { # model label value
    if [ -n "$3" ]; then v["$1|$2"]+="$3 "; else echo "bench: isa: $1, $2 gave no result" >&2; fi
  }
  local mpx=(-x OPENBLAS_NUM_THREADS); [ ${#digits_env[@]} -eq 0 ] || mpx+=(-x DIGITS_ISA)
  local torch_seen="" rep model steps threads j line
  for rep in $(seq "$reps"); do
    add fma 1 "$(env "${unset_caps[@]}" "${digits_env[@]}" "$bin" bench --fma-peak --threads 1 --json | field fma_gflops)"
    add fma 2 "$(env "${unset_caps[@]}" "${digits_env[@]}" "$bin" bench --fma-peak --threads 2 --json | field fma_gflops)"
    for model in "${models[@]}"; do
      # Half the throughput section's steps (150, 400, 1000), to keep REPS=3 near 10 minutes on an idle machine.
      steps=75; [ "$model" = lenet5 ] && steps=500; [ "$model" = convnet ] && steps=200
      for threads in 1 2; do
        j=$(env "${unset_caps[@]}" "${digits_env[@]}" OPENBLAS_NUM_THREADS=1 "$bin" bench --model "$model" --threads "$threads" \
              --batch-size "$batch" --steps "$steps" --json) || j=""
        add "$model" "digits 1 x $threads" "$(field images_per_second <<<"$j")"
        [ -z "$(field flop_per_image <<<"$j")" ] || flop[$model]=$(field flop_per_image <<<"$j")
        if [ -n "$torch_version" ]; then
          line=$(env "${unset_caps[@]}" "${torch_env[@]}" "${tuned[@]}" "$tpy" scripts/torch_bench.py "$model" --channels-last \
                   --threads "$threads" --batch-size "$batch" --steps "$steps" --train-only --max-seconds 20 2>/dev/null) || line=""
          add "$model" "PyTorch tuned 1 x $threads" "$(field images_per_second <<<"$line")"
          torch_seen+=" $(sed -nE 's/.*"cpu_capability":"([^"]*)".*/\1/p' <<<"$line")"
        fi
      done
      rm -f "$out/isa2.jsonl"
      if env "${unset_caps[@]}" "${digits_env[@]}" OPENBLAS_NUM_THREADS=1 mpirun -np 2 "${mpx[@]}" "$bin" train --data-dir data/mnist \
           --model "$model" --batch-size "$batch" --max-steps "$((steps / 2 + 20))" --no-eval --no-checkpoints --progress never \
           --threads 1 --metrics-out "$out/isa2.jsonl" > /dev/null 2>&1; then
        add "$model" "digits mpirun 2 x 1" "$(field images_per_second < "$out/isa2.jsonl")"
      else
        echo "bench: isa: mpirun -np 2 digits train --model $model failed" >&2
      fi
      if [ -n "$torch_version" ]; then
        # steps per rank: half, so the two ranks together time as many images as one process does.
        line=$(env "${unset_caps[@]}" "${torch_env[@]}" "${tuned[@]}" "$tpy" scripts/torch_bench.py "$model" --channels-last --ddp 2 \
                 --batch-size "$batch" --steps "$((steps / 2))" --train-only 2>/dev/null) || line=""
        add "$model" "PyTorch tuned DDP 2 x 1" "$(field images_per_second <<<"$line")"
        if [[ "$untuned_models" == *" $model "* ]]; then
          line=$(env "${unset_caps[@]}" "${torch_env[@]}" "$tpy" scripts/torch_bench.py "$model" --threads 1 --batch-size "$batch" \
                   --steps "$steps" --train-only --max-seconds 20 2>/dev/null) || line=""
          add "$model" "PyTorch untuned 1 x 1" "$(field images_per_second <<<"$line")"
        fi
      fi
      if [ -n "$tf_version" ] && [[ "$tf_models" == *" $model "* ]]; then
        for threads in 1 2; do
          line=$(env "${unset_caps[@]}" "${tf_env[@]}" TF_CPP_MIN_LOG_LEVEL=3 "$fpy" scripts/tf_bench.py "$model" --threads "$threads" \
                   --batch-size "$batch" --steps "$steps" --latency-runs 1 2>/dev/null) || line=""
          add "$model" "TensorFlow 1 x $threads" "$(field images_per_second <<<"$line")"
        done
      fi
    done
  done

  # The peak is the best of the repetitions: other work on the machine can only lower it.
  local p1 p2
  p1=$(printf '%s\n' ${v["fma|1"]:-0} | sort -g | tail -1); p2=$(printf '%s\n' ${v["fma|2"]:-0} | sort -g | tail -1)
  cores_of() { case "$1" in *"1 x 1"*) echo 1 ;; *) echo 2 ;; esac; }
  best_of() { # model label… -> "median|label" of the fastest measured, or "|"
    local m="$1" l x b="" bl=""; shift
    for l in "$@"; do
      [ -n "${v["$m|$l"]:-}" ] || continue
      x=$(printf '%s\n' ${v["$m|$l"]} | median)
      if [ -z "$b" ] || awk -v a="$x" -v b="$b" 'BEGIN { exit !(a > b) }'; then b=$x bl=$l; fi
    done
    echo "$b|$bl"
  }
  local labels=("digits 1 x 1" "digits 1 x 2" "digits mpirun 2 x 1" "PyTorch tuned 1 x 1" "PyTorch tuned 1 x 2"
                "PyTorch tuned DDP 2 x 1" "PyTorch untuned 1 x 1" "TensorFlow 1 x 1" "TensorFlow 1 x 2")
  echo "### digits against PyTorch and TensorFlow, every side $cap_label, batch 64, medians of $reps alternating runs (\`scripts/bench.sh isa\`)"
  echo
  echo "CPU: $cpu (family $family, model $cpumodel), $(nproc) cores, $avx512."
  echo
  echo "- digits: $digits_note."
  echo "- digits \`bench --fma-peak\`${digits_env:+ with ${digits_env[*]}}, best of $reps: $(printf %.0f "$p1") GFLOP/s on 1 thread, $(printf %.0f "$p2") on 2 (median (min-max): $(printf '%s\n' ${v["fma|1"]:-0} | stats 0) and $(printf '%s\n' ${v["fma|2"]:-0} | stats 0))."
  if [ -n "$torch_version" ]; then
    local seen; seen=$(tr ' ' '\n' <<<"$torch_seen" | sed '/^$/d' | sort -u | paste -sd, -)
    echo "- PyTorch $torch_version${torch_env:+ with ${torch_env[*]}}: $torch_check; in the timed runs get_cpu_capability() = ${seen:-?}. Tuned: channels-last + ${tuned[*]}."
    [ "$isa" != avx2 ] || [ "$seen" = AVX2 ] || echo "- **PyTorch did not run at AVX2** (capabilities seen: ${seen:-none}): its figures are not capped."
  else
    echo "- PyTorch is not importable by $tpy: no PyTorch rows (set TORCH_PYTHON)."
  fi
  if [ -n "$tf_version" ]; then
    echo "- TensorFlow $tf_version with ${tf_env[*]}: $tf_check."
  else
    echo "- TensorFlow is not importable by $fpy: no TensorFlow rows (set TF_PYTHON)."
  fi
  echo
  echo "| model | program, ranks x threads | training images/s, median (min-max) | GFLOP/s | % of FMA peak |"
  echo "| --- | --- | --- | --- | --- |"
  local l m g peak
  for model in "${models[@]}"; do
    for l in "${labels[@]}"; do
      [ -n "${v["$model|$l"]:-}" ] || continue
      m=$(printf '%s\n' ${v["$model|$l"]} | median)
      g=$(awk -v i="$m" -v f="${flop[$model]:-0}" 'BEGIN { printf "%.1f", i * f / 1e9 }')
      peak=$([ "$(cores_of "$l")" = 1 ] && echo "$p1" || echo "$p2")
      echo "| $model | $l | $(printf '%s\n' ${v["$model|$l"]} | stats 0) | $g | $(awk -v a="$g" -v b="$peak" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') |"
    done
  done
  echo
  echo "(GFLOP/s: digits' count for the model, training = 3 x the forward multiply-adds x 2, for every program; peak: digits' \`bench --fma-peak\` at the same number of cores, best of the repetitions.)"
  echo
  echo "Side by side: each side's fastest configuration on 1 core, and on 2 cores (any configuration above that uses at most 2 cores: 1 x 1, 1 x 2 or 2 ranks)."
  echo
  echo "| model | cores | digits images/s (configuration) | best PyTorch images/s (configuration) | best TensorFlow images/s (configuration) | digits / best other | target | met | digits % of FMA peak |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  local cores d t f dv dl tv tl fv fl other ratio target need met
  for model in "${models[@]}"; do
    for cores in 1 2; do
      if [ "$cores" = 1 ]; then
        d=$(best_of "$model" "digits 1 x 1"); t=$(best_of "$model" "PyTorch tuned 1 x 1" "PyTorch untuned 1 x 1")
        f=$(best_of "$model" "TensorFlow 1 x 1"); peak=$p1
      else
        d=$(best_of "$model" "digits 1 x 1" "digits 1 x 2" "digits mpirun 2 x 1")
        t=$(best_of "$model" "PyTorch tuned 1 x 1" "PyTorch untuned 1 x 1" "PyTorch tuned 1 x 2" "PyTorch tuned DDP 2 x 1")
        f=$(best_of "$model" "TensorFlow 1 x 1" "TensorFlow 1 x 2"); peak=$p2
      fi
      dv=${d%%|*} dl=${d#*|} tv=${t%%|*} tl=${t#*|} fv=${f%%|*} fl=${f#*|}
      other=$(awk -v a="${tv:-0}" -v b="${fv:-0}" 'BEGIN { print (a > b ? a : b) }')
      case "$model" in default|reference) need=2; target="≥ 2x PyTorch" ;; *) need=1.5; target="≥ 1.5x the better of PyTorch and TensorFlow" ;; esac
      ratio=$(awk -v a="${dv:-0}" -v b="$other" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }')
      met=$(awk -v r="$ratio" -v n="$need" 'BEGIN { if (r == "-") print "-"; else print (r + 0 >= n) ? "yes" : "no" }')
      g=$(awk -v i="${dv:-0}" -v f="${flop[$model]:-0}" 'BEGIN { printf "%.1f", i * f / 1e9 }')
      echo "| $model | $cores | $([ -n "$dv" ] && printf '%.0f (%s)' "$dv" "${dl#digits }" || echo -) | $([ -n "$tv" ] && printf '%.0f (%s)' "$tv" "${tl#PyTorch }" || echo -) | $([ -n "$fv" ] && printf '%.0f (%s)' "$fv" "${fl#TensorFlow }" || echo -) | ${ratio}$([ "$ratio" = - ] || echo x) | $target | $met | $(awk -v a="$g" -v b="$peak" 'BEGIN { printf "%.0f%% (%s GFLOP/s)", (b > 0 ? 100 * a / b : 0), a }') |"
    done
  done
  echo
  echo "(section wall time $((SECONDS - started)) s; load average (1, 5, 15 min) $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after: above 2 on these 2 cores means other work shared them)"
  echo
}

for s in "${sections[@]}"; do
  case "$s" in
    threads) bench_threads ;;
    data) bench_data ;;
    throughput) bench_throughput ;;
    accuracy) bench_accuracy ;;
    scaling) bench_scaling ;;
    mpi-accuracy) bench_mpi_accuracy ;;
    augmentation) bench_augmentation ;;
    cluster) bench_cluster ;;
    wire) bench_wire ;;
    checkpoint) bench_checkpoint ;;
    use) bench_use ;;
    conv) bench_conv ;;
    isa) bench_isa ;;
    *) echo "bench: unknown section '$s' (known: data, threads, throughput, scaling, accuracy, mpi-accuracy, augmentation, cluster, wire, checkpoint, use, conv, isa)" >&2; exit 2 ;;
  esac
done
