"""What the memorization audit adds to an evaluation of 1,000 samples per class of the shipped
generator: ``augment.evaluation.audit.run_audit`` alone (pixels against all 60,000 training
images, features, the picture), timed three times on 1 and on 2 threads, wall and CPU seconds.

    nice -n 5 python3 experiments/results/memorization/cost.py > experiments/results/memorization/cost.json
"""

import json
import platform
import time

import torch

from augment.checkpoint import load_generator
from augment.data.subsets import per_class_subset
from augment.evaluation.audit import native_pixels, run_audit
from augment.evaluation.classifier import features_and_predictions
from augment.evaluation.classifier_files import default_classifier
from augment.evaluation.scoring import load_reference, load_train_split, real_train_subset, sample_generator

N_PER_CLASS = 1000


def main() -> None:
    classifier = default_classifier()
    reference = load_reference(classifier)
    train = load_train_split(reference)
    images, labels = sample_generator(load_generator("augment/weights/generator.safetensors"), N_PER_CLASS, 0)
    features = features_and_predictions(classifier, images)[0]
    pixels = native_pixels(images, tuple(reference.pixels.shape[1:]))
    baseline = real_train_subset(reference, N_PER_CLASS, 0, train)[0]
    known = (per_class_subset(train.labels, N_PER_CLASS, 0, 10), features_and_predictions(classifier, baseline)[0])
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "runs": {}}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs = []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            run_audit(images, pixels, labels, features, classifier, train, reference.held_out,
                      feature_per_class=N_PER_CLASS, embedded=known)
            runs.append({"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)})
        out["runs"][f"{threads} thread{'s' if threads > 1 else ''}"] = runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
