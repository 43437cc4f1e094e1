#!/usr/bin/env bash
# The fair regime on a CPU: quarter-width generators trained on each n-per-class subset, then
# the `cpu` preset's fair cells for them (experiments/results/cpu_fair_small/FINDINGS.md).
#
#   AUGMENT_DATA=data/mnist bash experiments/fair_cpu.sh            # everything (hours on 2 cores)
#   JOBS="10:0 100:0" STEPS=5000 bash experiments/fair_cpu.sh        # some generators, then their cells
#   CRITIC_AUGMENT=translation,cutout RUNS=runs/cpu_fair_diffaug OUT=experiments/results/cpu_fair_diffaug \
#     JOBS="10:0 100:0" bash experiments/fair_cpu.sh                 # the same with DiffAugment
#
# A generator is n:seed. Each trains with one thread (two run side by side on 2 cores) for
# STEPS generator steps with --g-width 32 --d-width 16; a finished one is kept, an
# interrupted one resumes. The grid then runs the fair cells (and the real-only/classical
# cells they are compared with) for every n and seed whose generator is there; finished cells
# are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-"10:0 100:0 500:0 10:1 100:1 10:2 100:2"}
STEPS=${STEPS:-5000}
RUNS=${RUNS:-runs/cpu_fair_small}
OUT=${OUT:-experiments/results/cpu_fair_small}
PARALLEL=${PARALLEL:-2}
CRITIC_AUGMENT=${CRITIC_AUGMENT:-none}

train_one() {  # n seed
  local dir="$RUNS/n$1_seed$2"
  if [ -f "$dir/checkpoints/last.pt" ]; then
    OMP_NUM_THREADS=1 augment train --run-dir "$dir" --resume --max-steps "$STEPS" --quiet
  else
    OMP_NUM_THREADS=1 augment train --run-dir "$dir" --n-per-class "$1" --seed "$2" \
      --g-width 32 --d-width 16 --critic-augment "$CRITIC_AUGMENT" --max-steps "$STEPS" --sample-every 1000 --no-tensorboard \
      --device cpu --quiet
  fi
}

running=0
for job in $JOBS; do
  train_one "${job%%:*}" "${job##*:}" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
done
wait

# One grid invocation per n: the seeds that have a fair generator for that n.
for n in $(for job in $JOBS; do echo "${job%%:*}"; done | sort -un); do
  seeds=$(for job in $JOBS; do if [ "${job%%:*}" = "$n" ]; then echo "${job##*:}"; fi; done | sort -un | paste -sd,)
  count=$(( ${seeds##*,} + 1 ))
  OMP_NUM_THREADS=2 augment experiment --preset cpu --out "$OUT" --fair-dir "$RUNS" --n-per-class "$n" --regimes fair \
    --fair-critic-augment "$CRITIC_AUGMENT" \
    --seeds "$count" --fair-seeds "$seeds" --device cpu --quiet
done
