#!/usr/bin/env bash
# Every GPU measurement of the project in one deadline-bounded run (a lent GPU is scarce).
#
#   OUT=/tmp/out AUGMENT_DATA=data/mnist bash experiments/gpu_session.sh
#
# Stages (STAGES picks and orders them; default: what the 2026-11-28 session ran); each has a
# time limit and none stops the others:
#   cuda_tests         the test suite's CUDA-only tests (graph step, bf16 sampling, latents)
#   profile            profile_train_step.py: kernels and device time of the batched step
#   bench_train        reference loop vs eager vs fast (CUDA graph) step, batches/s
#   bench_cudnn        the fast paths again with cudnn.benchmark
#   explicit_gp        bench_train of the fast step (CUDA graph) against the explicit-penalty step,
#                      uncompiled and compiled (torch.compile), with operator/kernel counts (--ops)
#   longtail_fair      reference-size fair generators of the long-tailed grid (rho in LT_RATIOS,
#                      seeds in LT_SEEDS, LT_STEPS steps, class-balanced critic batches; 2 minutes
#                      each at most: the grid refuses a run that limit stopped short, whose
#                      checkpoint stays on the GPU machine)
#   quality            quality_per_minute.py: reference and fast loop, BUDGET_S each
#   fair               fair-regime generators, n in FAIR_N, seeds in FAIR_SEEDS
#   main               the main run: resumes the quality stage's fast run (or starts one) and
#                      trains until the deadline minus what the later stages need; a run it
#                      starts keeps a weight average when EMA_DECAY is set (e.g. 0.999)
#   finetune           fine-tunes the shipped generator (--init-generator, a fresh critic trained
#                      alone for FT_WARMUP steps, weight average EMA_DECAY or 0.999) until the
#                      deadline minus what the later stages need
#   bench_sampling     raw forward, FastGenerator, SyntheticMNIST + DataLoader, real pipeline
#                      (SAMPLING_COMPILE=max-autotune adds torch.compile'd forwards)
# Outputs under $OUT: results.tar.gz (logs, JSON, run directories without weights), the main
# run's generator and the fair and reference generators (safetensors), session.log.
# Small settings for a CPU dry run: DEVICE=cpu TOTAL_S=240 BUDGET_S=5 BENCH_STEPS=3 FAIR_STEPS=2
# A next session might run (open goals first: the DataLoader rate with the deconv default, the
# CUDA-only tests, quality per minute at a budget where the fast loop is past the 8,000 steps
# that the H100 main run needed, i.e. BUDGET_S >= 150; at 60 s both loops scored 10%):
#   STAGES="cuda_tests bench_sampling quality main" BUDGET_S=150 SAMPLING_COMPILE=max-autotune
# or, for the Pretrained issue's 99% agreement (a weight average; results/generator_ema.md):
#   STAGES="cuda_tests bench_sampling main" EMA_DECAY=0.999 SAMPLING_COMPILE=max-autotune
# A fine-tune of the shipped generator with a fresh critic made it worse on the CPU (1,275
# steps after 200 of warm-up, results/finetune_cpu.md); to try it at GPU length, with a long
# warm-up:
#   STAGES="finetune" FT_WARMUP=5000 EMA_DECAY=0.999
set -u
: "${OUT:?set OUT to the output directory}"
DEVICE=${DEVICE:-cuda}
TOTAL_S=${TOTAL_S:-580}          # whole script, packaging included
BUDGET_S=${BUDGET_S:-60}         # quality-per-minute budget per loop
BENCH_STEPS=${BENCH_STEPS:-240}  # timed generator steps per path in bench_train
FAIR_STEPS=${FAIR_STEPS:-3000}   # generator steps per fair generator (GridConfig.fair_gan_steps)
FAIR_MAX_MIN=${FAIR_MAX_MIN:-0.5}
SAMPLING_S=${SAMPLING_S:-1}
STAGES=${STAGES:-"bench_train quality fair main bench_sampling"}
FAIR_N=${FAIR_N:-"10 100 500"}
FAIR_SEEDS=${FAIR_SEEDS:-"0"}
MAIN_RESERVE_S=${MAIN_RESERVE_S:-110}  # what the stages after main need, with slack
WORK=${WORK:-runs/gpu_session}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
START=$(date +%s)
DEADLINE=$((START + TOTAL_S))
mkdir -p "$OUT" "$WORK/logs"
LOG=$OUT/session.log

say() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - $(date +%s))); }
# stage NAME LIMIT_S RESERVE_S CMD...: run CMD for at most min(LIMIT, time left - RESERVE)
stage() {
  local name=$1 limit=$2 reserve=$3; shift 3
  local t=$(($(left) - reserve)); ((t > limit)) && t=$limit
  if ((t < 10)); then say "skip $name (no time)"; return 1; fi
  say "start $name (limit ${t}s): $*"
  timeout --kill-after=5 "$t" "$@" >"$WORK/logs/$name.log" 2>&1
  local rc=$?
  say "end $name rc=$rc"; tail -n 4 "$WORK/logs/$name.log" | sed 's/^/    /' | tee -a "$LOG"
  return $rc
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  python3 -c 'import torch, torchvision, sys; print(sys.version.split()[0], torch.__version__,
torchvision.__version__, torch.cuda.is_available())'; nproc; } >"$WORK/logs/env.log" 2>&1
say "env: $(tr '\n' ' ' <"$WORK/logs/env.log")"

for name in $STAGES; do
  case $name in
  cuda_tests)
    stage cuda_tests 90 300 python3 -m pytest -q -rs -p no:cacheprovider tests/training/test_steps.py tests/training/test_cuda_graph.py \
      tests/synthetic/test_fast_generator.py tests/synthetic/test_dataset.py -k cuda ;;
  profile)
    stage profile 90 300 python3 experiments/profile_train_step.py --device "$DEVICE" \
      --steps 20 --out "$WORK/profile_train_step.json" ;;
  bench_train)
    stage bench_train 150 300 python3 experiments/bench_train.py --device "$DEVICE" \
      --steps "$BENCH_STEPS" --rounds 3 --out "$WORK/bench_train.json" ;;
  explicit_gp)
    stage explicit_gp 240 300 python3 experiments/bench_train.py --device "$DEVICE" \
      --paths fast,explicit-gp,explicit-gp-compiled --ops --check-steps 0 --steps "$BENCH_STEPS" --rounds 3 \
      --out "$WORK/bench_train_explicit_gp.json" ;;
  longtail_fair)
    for seed in ${LT_SEEDS:-"0 1 2"}; do for rho in ${LT_RATIOS:-"100 10"}; do
      stage "longtail_lt${rho}_seed$seed" 150 150 python3 -m augment train \
        --run-dir "$WORK/longtail/lt${rho}_seed$seed" --imbalance-ratio "$rho" --seed "$seed" \
        --max-steps "${LT_STEPS:-10000}" --max-minutes 2 --sample-every 1000 --checkpoint-every 1000 \
        --no-tensorboard --device "$DEVICE" --quiet
    done; done ;;
  bench_cudnn)
    stage bench_cudnn 60 300 python3 experiments/bench_train.py --device "$DEVICE" \
      --paths fast,batched --check-steps 0 --cudnn-benchmark --steps "$BENCH_STEPS" --rounds 3 \
      --out "$WORK/bench_train_cudnn.json" ;;
  quality)
    stage quality $((BUDGET_S * 2 + 90)) 200 python3 experiments/quality_per_minute.py \
      --device "$DEVICE" --budget-s "$BUDGET_S" --out-dir "$WORK/quality" --fast-run-dir "$WORK/main" ;;
  fair)
    for seed in $FAIR_SEEDS; do for n in $FAIR_N; do
      stage "fair_n${n}_seed$seed" "$(python3 -c "print(int($FAIR_MAX_MIN * 60) + 90)")" 150 python3 -m augment train \
        --run-dir "$WORK/fair/n${n}_seed$seed" --n-per-class "$n" --seed "$seed" \
        --max-steps "$FAIR_STEPS" --max-minutes "$FAIR_MAX_MIN" \
        --sample-every $(((FAIR_STEPS + 9) / 10)) --checkpoint-every $(((FAIR_STEPS + 9) / 10)) \
        --no-tensorboard --device "$DEVICE" --quiet
    done; done ;;
  main)
    # all time left but what the later stages and packaging need, minus start-up/export slack
    main_s=$(($(left) - MAIN_RESERVE_S - 35))
    if [ -f "$WORK/main/checkpoints/last.pt" ]; then
      [ -n "${EMA_DECAY:-}" ] && say "main resumes the quality stage's run, which has no weight average: EMA_DECAY ignored (leave quality out of STAGES to use it)"
      done_s=$(python3 -c "import json; print(json.loads(open('$WORK/main/metrics.jsonl').read().splitlines()[-1])['time_s'])")
      minutes=$(python3 -c "print(round(($done_s + max($main_s, 6)) / 60, 2))")
      stage main 600 "$MAIN_RESERVE_S" python3 -m augment train --resume --run-dir "$WORK/main" \
        --max-minutes "$minutes" --quiet
    else
      minutes=$(python3 -c "print(round(max($main_s, 6) / 60, 2))")
      rm -rf "$WORK/main"
      stage main 600 "$MAIN_RESERVE_S" python3 -m augment train --run-dir "$WORK/main" \
        --max-minutes "$minutes" --sample-every 1000 --checkpoint-every 5000 --device "$DEVICE" \
        ${EMA_DECAY:+--ema-decay "$EMA_DECAY"} --quiet
    fi ;;
  finetune)
    ft_s=$(($(left) - MAIN_RESERVE_S - 35))
    minutes=$(python3 -c "print(round(max($ft_s, 6) / 60, 2))")
    rm -rf "$WORK/finetune"
    stage finetune 600 "$MAIN_RESERVE_S" python3 -m augment train --run-dir "$WORK/finetune" \
      --init-generator augment/weights/generator.safetensors --critic-warmup "${FT_WARMUP:-500}" \
      --ema-decay "${EMA_DECAY:-0.999}" --max-minutes "$minutes" --sample-every 1000 \
      --checkpoint-every 5000 --device "$DEVICE" --quiet
    python3 -m augment export "$WORK/finetune/checkpoints/last.pt" --live-weights \
      -o "$WORK/finetune/generator_live.safetensors" >>"$LOG" 2>&1 ;;
  bench_sampling)
    stage bench_sampling 60 15 python3 experiments/bench_sampling.py --device "$DEVICE" \
      --seconds "$SAMPLING_S" --repeats 3 --out "$WORK/bench_sampling.json" ${SAMPLING_COMPILE:+--compile "$SAMPLING_COMPILE"} ;;
  *) say "unknown stage $name" ;;
  esac
done

say "packaging"
cp "$WORK/main/generator.safetensors" "$OUT/main_generator.safetensors" 2>/dev/null
cp "$WORK/finetune/generator.safetensors" "$OUT/finetune_generator.safetensors" 2>/dev/null
cp "$WORK/finetune/generator_live.safetensors" "$OUT/finetune_generator_live.safetensors" 2>/dev/null
for run in "$WORK"/fair/*/; do  # 64 MB come back: the main generator and 3 fair ones
  [ -f "$run/generator.safetensors" ] && cp "$run/generator.safetensors" "$OUT/fair_$(basename "$run").safetensors"
done
cp "$WORK"/quality/reference_*s.safetensors "$OUT/" 2>/dev/null
for run in "$WORK"/longtail/*/; do  # reference size, 14 MB each: kept while they fit (below)
  [ -f "$run/generator.safetensors" ] && cp "$run/generator.safetensors" "$OUT/longtail_$(basename "$run").safetensors"
done
tar -czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.safetensors' --exclude='.*.tmp' \
  -C "$(dirname "$WORK")" "$(basename "$WORK")"
if (($(du -cb "$OUT" | tail -1 | cut -f1) > 62000000)); then  # 64 MB come back at most
  say "dropping the reference generator (size)"; rm -f "$OUT"/reference_*s.safetensors
fi
if (($(du -cb "$OUT" | tail -1 | cut -f1) > 62000000)); then
  say "dropping the fair generators (size)"; rm -f "$OUT"/fair_*.safetensors
fi
for f in $(ls -r "$OUT"/longtail_*.safetensors 2>/dev/null); do
  if (($(du -cb "$OUT" | tail -1 | cut -f1) > 62000000)); then say "dropping $(basename "$f") (size)"; rm -f "$f"; fi
done
ls -la "$OUT" | tee -a "$LOG"
say "done"
