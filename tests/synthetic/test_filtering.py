"""Quality-filtered sampling: items a judge rejects are redrawn, deterministically, per index."""

import pytest
import torch
from torch import nn

from augment.errors import ConfigError
from augment.evaluation.classifier_files import quality_filter
from augment.synthetic.dataset import SamplingOptions, SyntheticMNIST
from augment.synthetic.dump import dump_synthetic
from augment.synthetic.filtering import QualityFilter, attempt_seed, class_confidence


class BrightnessJudge(nn.Module):
    """A toy judge: an image's class-0 logit grows with its mean brightness, the others are 0."""

    def forward(self, images):
        logits = torch.zeros(len(images), 10)
        logits[:, 0] = 40 * images.flatten(1).mean(1)
        return logits


class FiveClassJudge(nn.Module):
    def forward(self, images):
        return torch.zeros(len(images), 5)


def test_a_judge_of_other_classes_than_the_generator_is_refused(generator):
    with pytest.raises(ConfigError, match="tells 5 classes, the generator makes 10"):
        SyntheticMNIST(generator, num_samples=4, sampling=SamplingOptions(quality=QualityFilter(FiveClassJudge(), 0.5)))


def test_attempt_seeds_are_distinct_and_attempt_zero_is_the_seed():
    seeds = {attempt_seed(5, a) for a in range(100)}
    assert attempt_seed(5, 0) == 5 and len(seeds) == 100 and all(0 <= s < 2 ** 64 for s in seeds)


def test_kept_items_pass_the_judge_and_are_pure_functions_of_the_index(generator):
    judge = BrightnessJudge()
    plain = SyntheticMNIST(generator, num_samples=40, seed=1, classes=[0])
    base = class_confidence(judge, plain.generate(range(40))[0], torch.zeros(40, dtype=torch.long), 64)
    p = float(base.median())  # half the first draws fail
    ds = SyntheticMNIST(generator, num_samples=40, seed=1, classes=[0],
                        sampling=SamplingOptions(quality=QualityFilter(judge, p, max_attempts=32)))
    images, labels = ds.generate(range(40))
    scores = class_confidence(judge, images, labels, 64)
    assert bool((scores >= p).all())  # every item passes (32 tries are plenty here)
    kept = base >= p
    assert torch.equal(images[kept], plain.generate(range(40))[0][kept])  # passing first draws are kept
    assert not torch.equal(images[~kept], plain.generate(range(40))[0][~kept])
    # the same item whatever batch, order or single access
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ds.generate(order)[0], images[order])
    assert torch.equal(ds[17][0], images[17]) and torch.equal(ds.generate([17, 2])[0][0], images[17])


def test_without_a_pass_the_best_scored_attempt_is_kept(generator):
    ds = SyntheticMNIST(generator, num_samples=8, seed=2, classes=[0],
                        sampling=SamplingOptions(quality=QualityFilter(BrightnessJudge(), 0.999999, max_attempts=4)))
    images = ds.generate(range(8))[0]
    tries = [SyntheticMNIST(generator, num_samples=8, seed=attempt_seed(2, a), classes=[0]).generate(range(8))[0]
             for a in range(4)]
    scores = torch.stack([class_confidence(BrightnessJudge(), t, torch.zeros(8, dtype=torch.long), 64) for t in tries])
    best = scores.argmax(0)
    for i in range(8):
        assert torch.equal(images[i], tries[int(best[i])][i])


@pytest.mark.parametrize("kwargs, match", [
    ({"min_confidence": 1.0}, r"min_confidence must lie in \(0, 1\)"),
    ({"min_confidence": 0.5, "max_attempts": 0}, "max_attempts"),
    ({"min_confidence": True}, "min_confidence"),
])
def test_bad_filter_settings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        QualityFilter(BrightnessJudge(), **kwargs)
    with pytest.raises(ConfigError, match="torch module"):
        QualityFilter(lambda x: x, 0.5)


def test_the_shipped_judge_and_the_manifest(tmp_path, generator):
    judge = quality_filter(0.5)
    assert judge.name.startswith("shipped evaluator") and judge.describe()["min_confidence"] == 0.5
    manifest = dump_synthetic(tmp_path / "d", generator, 10, ["npz"], sampling=SamplingOptions(quality=judge),
                              test_samples=0)
    assert manifest["quality_filter"] == judge.describe()
