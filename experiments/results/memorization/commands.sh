#!/usr/bin/env bash
# The memorization audits of experiments/results/memorization/README.md, one at a time, from the
# repository root, with real MNIST in $AUGMENT_DATA. Each writes a report directory beside this file.
set -euo pipefail
out=experiments/results/memorization
fair=experiments/results/cpu_fair_small_generator
run() { nice -n 5 augment evaluate "$@" --device cpu --overwrite; }
run augment/weights/generator.safetensors -o $out/shipped
for n in 10 100 500; do
  run $fair/n${n}_seed0/generator.safetensors -o $out/fair_n${n}_seed0 --train-n-per-class $n --train-seed 0
done
run experiments/results/longtail_cpu/fair_generators/lt100_seed0/generator.safetensors -o $out/fair_lt100_seed0 \
  --train-imbalance-ratio 100 --train-seed 0
