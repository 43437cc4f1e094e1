import math

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import ConcatDataset, DataLoader, Subset
from torchvision import transforms as T

from augment.data.real import RealMNIST
from augment.errors import ConfigError
from augment.synthetic.dataset import SyntheticMNIST, collate_batch
from augment.synthetic.dump import dump_synthetic
from augment.synthetic.mixing import (
    BatchedConcatDataset,
    class_counts,
    mix_real_synthetic,
    synthetic_only,
    top_up_counts,
    top_up_real_synthetic,
)
from tests.conftest import bar_digits


def all_images(dataset, batch_size: int) -> torch.Tensor:
    return torch.cat([x for x, _ in DataLoader(dataset, batch_size=batch_size)])


def test_mix_ratio_per_class(generator, idx_dir):
    real = RealMNIST(idx_dir, dataset="idx")  # 80 toy digits, 8 per class
    mixed = mix_real_synthetic(real, generator, ratio=1.5, seed=3)
    assert mixed.real is real and len(mixed.synthetic) == 120
    assert class_counts(mixed.synthetic) == {c: 12 for c in range(10)}
    assert class_counts(mixed) == {c: 20 for c in range(10)}
    x, y = next(iter(DataLoader(mixed, batch_size=len(mixed), collate_fn=collate_batch)))
    assert torch.equal(y, mixed.targets) and x.shape == (200, 1, 32, 32)
    assert torch.equal(x[:80], real.data) and torch.equal(x[80:], all_images(mixed.synthetic, 120))
    order = [150, 3, 80, 79, 199]
    batch = mixed.__getitems__(order)
    for k, i in enumerate(order):
        assert torch.equal(batch[k][0], mixed[i][0]) and batch[k][1] == mixed[i][1]
    keep = [i for i in range(80) if real.targets[i] != 2] + [2, 12]  # uneven: 2 of class 2
    uneven = mix_real_synthetic(Subset(real, keep), generator, ratio=0.5, classes=[0, 2])
    assert class_counts(uneven.synthetic) == {0: 4, 2: 1}
    assert mix_real_synthetic(real, generator, ratio=0).synthetic is None
    # halves round up (not to even, not down): 5 * 0.5 = 2.5 -> 3 and 3 * 0.5 = 1.5 -> 2
    five_and_three = [i for i in range(80) if real.targets[i] == 0][:5] + \
        [i for i in range(80) if real.targets[i] == 1][:3]
    halves = mix_real_synthetic(Subset(real, five_and_three), generator, ratio=0.5)
    assert class_counts(halves.synthetic) == {0: 3, 1: 2}


def test_synthetic_only(generator, idx_dir):
    real = RealMNIST(idx_dir, dataset="idx")
    only = mix_real_synthetic(real, generator, ratio=math.inf, per_class=3)
    assert only.real is None and class_counts(only) == {c: 3 for c in range(10)}
    same_size = mix_real_synthetic(real, generator, ratio=math.inf)
    assert class_counts(same_size) == class_counts(real)
    ds = synthetic_only(generator, 4, classes=[1, 9])
    assert len(ds) == 8 and class_counts(ds) == {1: 4, 9: 4}
    ds = synthetic_only(generator, {0: 2, 5: 3})
    assert class_counts(ds) == {0: 2, 5: 3}
    with pytest.raises(ConfigError):
        mix_real_synthetic(real, generator, ratio=-1)
    with pytest.raises(ConfigError, match="per_class"):
        mix_real_synthetic(real, generator, ratio=2, per_class=3)
    with pytest.raises(ConfigError, match="per_class"):
        synthetic_only(generator, 0)


def test_batched_concat_equals_concat_with_one_forward_per_part(generator, idx_dir, monkeypatch):
    real = RealMNIST(idx_dir, dataset="idx")
    a, b = SyntheticMNIST(generator, num_samples=30, seed=1), SyntheticMNIST(generator, num_samples=20, seed=2)
    parts = [a, real, Subset(b, list(range(5, 20)))]
    batched, plain = BatchedConcatDataset(parts), ConcatDataset(parts)
    assert len(batched) == len(plain) == 125
    assert torch.equal(batched.targets, torch.tensor([int(plain[i][1]) for i in range(125)]))
    forwards = []
    generate = SyntheticMNIST.generate
    monkeypatch.setattr(SyntheticMNIST, "generate", lambda self, idx: forwards.append(self) or generate(self, idx))
    order = torch.randperm(125, generator=torch.Generator().manual_seed(0)).tolist()
    (x, y), = DataLoader(batched, batch_size=125, sampler=order, collate_fn=collate_batch)
    assert len(forwards) == 2 and {id(d) for d in forwards} == {id(a), id(b)}  # one per part
    monkeypatch.setattr(SyntheticMNIST, "generate", generate)
    for k, i in enumerate(order):
        image, label = plain[i]
        assert torch.equal(x[k], image) and int(y[k]) == label
    with pytest.raises(ConfigError, match="at least one"):
        BatchedConcatDataset([])
    with pytest.raises(IndexError):
        batched.__getitems__([125])


def test_fractional_per_class_counts_are_refused(generator):
    with pytest.raises(ConfigError, match="whole numbers"):
        mix_real_synthetic(None, generator, ratio=math.inf, per_class=2.7)
    with pytest.raises(ConfigError, match="whole numbers"):
        synthetic_only(generator, {1: 2.9, 3: 1})
    assert class_counts(synthetic_only(generator, {1: 2.0})) == {1: 2}


class _FloatTargets(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(1, 32, 32), i + 0.75


def test_batched_concat_keeps_items_it_cannot_batch_as_concat_does(generator):
    parts = [_FloatTargets(), torch.utils.data.TensorDataset(torch.zeros(2, 1, 32, 32), torch.zeros(2), torch.ones(2))]
    batched, plain = BatchedConcatDataset(parts), ConcatDataset(parts)
    got, expected = batched.__getitems__([0, 1, 2, 3, 4]), [plain[i] for i in range(5)]
    assert len(got) == 5
    for a, b in zip(got, expected):
        assert len(a) == len(b) and all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b))
    with pytest.raises(TypeError):
        batched.__getitems__([0.5])


def test_mixing_arguments_are_checked(generator, idx_dir):
    real = RealMNIST(idx_dir, dataset="idx")
    with pytest.raises(ConfigError, match="class 42 has nothing to mix"):
        mix_real_synthetic(real, generator, ratio=2, classes=[42])
    with pytest.raises(ConfigError, match="class ids"):
        mix_real_synthetic(real, generator, ratio=2, classes=["a"])
    for ratio in ("2", None, -1, True):
        with pytest.raises(ConfigError, match="ratio must be a number"):
            mix_real_synthetic(real, generator, ratio=ratio)
    with pytest.raises(ConfigError, match="per_class must be a positive integer"):
        mix_real_synthetic(None, generator, ratio=math.inf, per_class=0)
    for per_class in (None, math.inf, 0):
        with pytest.raises(ConfigError, match="per_class must be a positive integer"):
            synthetic_only(generator, per_class)
    with pytest.raises(ConfigError, match="keys must be class ids"):
        synthetic_only(generator, {"x": 2})
    assert len(mix_real_synthetic(real, generator, ratio=0.25, device="cpu")) == 80 + 10 * 2  # 8 x 0.25 = 2


def test_top_up_fills_every_class_to_the_largest_or_a_target(generator, idx_dir):
    real = RealMNIST(idx_dir, dataset="idx")  # 8 per class
    keep = [i for c in range(10) for i in (real.targets == c).nonzero().flatten().tolist()[:max(1, 8 - c)]]
    long_tailed = Subset(real, keep)
    counts = class_counts(long_tailed)
    topped = top_up_real_synthetic(long_tailed, generator, seed=4)
    assert class_counts(topped) == {c: 8 for c in counts}  # every class as large as the largest
    assert class_counts(topped.synthetic) == {c: 8 - n for c, n in counts.items() if n < 8}
    assert topped.real is long_tailed
    assert class_counts(top_up_real_synthetic(long_tailed, generator, target=10)) == {c: 10 for c in counts}
    only = top_up_real_synthetic(long_tailed, generator, classes=[9])
    assert class_counts(only.synthetic) == {9: 8 - counts[9]}
    assert top_up_real_synthetic(real, generator).synthetic is None  # balanced already
    assert top_up_counts({0: 5, 1: 2, 2: 9}, target=6) == {0: 1, 1: 4, 2: 0}
    with pytest.raises(ConfigError, match="no real item to top up"):
        top_up_real_synthetic(long_tailed, generator, classes=[11])
    with pytest.raises(ConfigError, match="whole numbers"):
        top_up_counts({0: 5}, target=2.5)


def test_torchvision_mnist_with_tensor_transforms_gets_a_matching_synthetic_part(generator, tmp_path):
    """torchvision's MNIST with ToTensor + Normalize (also under a Subset) as the real part: the
    synthetic part yields PIL items through the same transforms, so the two batch together."""
    dump_synthetic(tmp_path / "d", generator, 40, ["idx"], seed=3, test_samples=0)
    usual = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    real = Subset(torchvision.datasets.MNIST(tmp_path / "d", train=True, transform=usual), range(30))
    mixed = mix_real_synthetic(real, generator, ratio=0.5, seed=1)
    assert mixed.synthetic.output == "pil" and mixed.synthetic.transform is usual
    x, y = next(iter(DataLoader(mixed, batch_size=len(mixed))))
    assert x.shape == (30 + len(mixed.synthetic), 1, 28, 28) and len(mixed.synthetic) > 0 and x.dtype == torch.float32
    pixels = (x * 0.3081 + 0.1307) * 255  # both parts: uint8 pixels through ToTensor and Normalize
    assert float((pixels - pixels.round()).abs().max()) < 1e-3 and pixels.min() > -1e-3 and pixels.max() < 255.001


def test_a_generator_of_other_data_is_refused_before_mixing(tmp_path, idx_dir):
    """The shipped generator makes digits: mixed into a named data set of other classes (an npz of
    clothes) it is refused in one line with the fix, as in evaluate and the grids."""
    images, labels = bar_digits(60)
    names = np.array(["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "boot"])
    np.savez(tmp_path / "clothes.npz", x=images.numpy(), y=labels.numpy(), class_names=names)
    clothes = RealMNIST(tmp_path / "clothes.npz")  # kind recognised: npz
    with pytest.raises(ConfigError, match=r"does not fit npz data .*train a generator of it"):
        mix_real_synthetic(clothes, None, ratio=1.0)


def test_pil_items_of_real_mnist_with_a_transform_mix_like_torchvisions(generator, idx_dir):
    """RealMNIST(output="pil", transform=T) stands in for datasets.MNIST: the synthetic part takes its
    item format (28x28 PIL through the same transform), not the models' 32x32 tensors."""
    real = RealMNIST(idx_dir, dataset="idx", output="pil", transform=T.ToTensor())
    mixed = mix_real_synthetic(real, generator, ratio=0.5, seed=0)
    assert mixed.synthetic.output == "pil" and mixed.synthetic.transform is real.transform
    assert mixed[len(mixed) - 1][0].shape == real[0][0].shape == (1, 28, 28)
