"""SyntheticMNIST: items from per-index latents and labels, batched fetch, DataLoader use."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import ConcatDataset, DataLoader, Subset, default_collate
from torchvision import transforms as T

import augment.synthetic.dataset as synthetic
from augment.checkpoint import save_generator
from augment.data.real import RealMNIST
from augment.errors import AugmentError, CheckpointError, ConfigError
from augment.images import to_mnist_tensor, to_uint8_images
from augment.manifests import write_manifest
from augment.provenance import MNIST, DataSignature
from augment.synthetic import shipped as pretrained
from augment.synthetic.dataset import RandomAccessWarning, SampleBatch, SamplingOptions, SyntheticMNIST, collate_batch
from augment.synthetic.dump import dump_synthetic
from augment.synthetic.fast_generator import FastGenerator, plain_forward
from augment.synthetic.latents import index_latents


def all_images(dataset, batch_size: int, **loader_kwargs) -> torch.Tensor:
    return torch.cat([x for x, _ in DataLoader(dataset, batch_size=batch_size, **loader_kwargs)])


# ------------------------------------------------------------------------------- dataset


def test_item_format_matches_real_mnist(generator, idx_dir):
    ds = SyntheticMNIST(generator, num_samples=30, seed=1)
    real = RealMNIST(idx_dir, dataset="idx")
    for dataset in (ds, real):
        img, label = dataset[3]
        assert img.shape == (1, 32, 32) and img.dtype == torch.float32 and type(label) is int
        assert float(img.abs().max()) <= 1.0
    assert ds[3][1] == 3 and ds.targets.tolist() == [i % 10 for i in range(30)]
    assert ds.classes == real.classes
    x, y = next(iter(DataLoader(ConcatDataset([real, ds]), batch_size=200)))
    assert x.shape == (110, 1, 32, 32) and y.dtype == torch.int64
    assert "Number of datapoints: 30" in repr(ds) and "Seed: 1" in repr(ds)


def test_images_are_the_generator_of_the_index_latents(generator):
    ds = SyntheticMNIST(generator, num_samples=20, seed=4, chunk=20)
    z = index_latents(4, torch.arange(20), generator.config.z_dim)
    expected = FastGenerator(generator)(z, ds.targets)
    torch.testing.assert_close(ds.generate(range(20))[0], expected, atol=1e-6, rtol=0)
    plain = plain_forward(generator, z, ds.targets)  # the generator itself, in eval mode
    torch.testing.assert_close(ds.generate(range(20))[0], plain, atol=2e-6, rtol=0)


def test_items_are_identical_whatever_the_batch(generator):
    ds = SyntheticMNIST(generator, num_samples=100, seed=1, chunk=16)
    reference = all_images(ds, 100)
    assert torch.equal(all_images(ds, 7), reference)
    assert torch.equal(torch.stack([ds[i][0] for i in range(0, 100, 9)]), reference[::9])
    assert torch.equal(ds[-1][0], reference[99])
    order = torch.randperm(100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(all_images(ds, 13, sampler=order.tolist()), reference[order])
    x, y = next(iter(DataLoader(ds, batch_size=100, shuffle=True,
                                generator=torch.Generator().manual_seed(5))))
    matches = (x[:, None] == reference[None]).flatten(2).all(-1)
    assert torch.equal(ds.targets[matches.float().argmax(1)], y)
    sub = Subset(ds, [3, 1, 4, 1, 5])
    assert torch.equal(all_images(sub, 5), reference[[3, 1, 4, 1, 5]])
    cat = ConcatDataset([ds, ds])
    assert torch.equal(all_images(cat, 4, sampler=[150, 2, 99, 100]), reference[[50, 2, 99, 0]])


def test_worker_processes_give_the_same_images(generator):
    ds = SyntheticMNIST(generator, num_samples=40, seed=2)
    assert torch.equal(all_images(ds, 10, num_workers=2), all_images(ds, 40))


def test_a_cuda_dataset_in_a_worker_process_is_a_clear_error(generator, monkeypatch):
    """Batched or item by item (e.g. under a plain ConcatDataset), a worker gets our error,
    not CUDA's fork error; checked on the CPU by posing as a worker of a CUDA dataset."""
    ds = SyntheticMNIST(generator, num_samples=8, seed=0)
    ds.device = torch.device("cuda")  # no CUDA tensor is made: the check comes first
    monkeypatch.setattr(synthetic, "get_worker_info", lambda: object())
    for fetch in (lambda: ds[3], lambda: ds.__getitems__([0, 1])):
        with pytest.raises(AugmentError, match="num_workers=0"):
            fetch()


def test_collate_batch_equals_default_collate(generator):
    ds = SyntheticMNIST(generator, num_samples=12, seed=0)
    batch = ds.__getitems__([5, 0, 11])
    assert isinstance(batch, SampleBatch) and len(batch) == 3 and batch[2][1] == 1
    fast, default = collate_batch(batch), default_collate(batch)
    assert torch.equal(fast[0], default[0]) and torch.equal(fast[1], default[1])
    assert torch.equal(collate_batch(list(batch))[1], default[1])


def test_transforms_apply_per_item(generator):
    ds = SyntheticMNIST(generator, num_samples=6, transform=lambda x: x * 0, target_transform=str)
    x, y = ds[4]
    assert float(x.abs().sum()) == 0 and y == "4"


def test_class_subset_and_weights(generator):
    ds = SyntheticMNIST(generator, num_samples=60, classes=[2, 7], class_weights=[1, 2])
    assert ds.counts_per_class() == {2: 20, 7: 40}
    assert [y for _, y in ds.__getitems__(range(6))] == ds.targets[:6].tolist()


def test_generator_sources(generator, generator_file, tmp_path, monkeypatch):
    from_module = SyntheticMNIST(generator, num_samples=8).generate(range(8))[0]
    from_file = SyntheticMNIST(generator_file, num_samples=8)
    assert torch.equal(from_file.generate(range(8))[0], from_module)
    assert from_file.source["file_sha256"] and from_file.source["path"] == str(generator_file)
    write_manifest(generator_file, {})
    monkeypatch.setattr(pretrained, "GENERATOR_PATH", generator_file)
    assert torch.equal(SyntheticMNIST(None, num_samples=8).generate(range(8))[0], from_module)
    monkeypatch.setattr(pretrained, "GENERATOR_PATH", tmp_path / "missing.safetensors")
    with pytest.raises(AugmentError, match="no shipped generator .*pass a generator file"):
        SyntheticMNIST(num_samples=8)


def test_no_global_rng_state_is_touched(generator):
    state = torch.random.get_rng_state()
    ds = SyntheticMNIST(generator, num_samples=10, sampling=SamplingOptions(truncation=0.5))
    ds.__getitems__(range(10))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_samples=0), "num_samples"),
    (dict(num_samples=-3), "num_samples"),
    (dict(classes=[1, 10]), "unknown class 10"),
    (dict(classes=[1, 1]), "duplicates"),
    (dict(classes=[]), "empty"),
    (dict(classes=[1, 2], class_weights=[1]), "1 class weights for 2"),
    (dict(class_weights=[-1] + [1] * 9), "non-negative"),
    (dict(seed=-1), "seed"),
    (dict(chunk=0), "chunk"),
    (dict(sampling=SamplingOptions(dtype="bf16")), "CUDA"),
    (dict(sampling={"truncation": 1.0}), "sampling must be a SamplingOptions"),
])
def test_bad_arguments(generator, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticMNIST(generator, **{"num_samples": 10, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    (dict(truncation=0), "truncation"),
    (dict(truncation="2"), "truncation must be a positive number"),
    (dict(truncation_mode="wrap"), "truncation_mode"),
    (dict(dtype="float16x"), "unknown dtype"),
    (dict(quality=0.9), "quality must be a QualityFilter"),
])
def test_bad_sampling_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SamplingOptions(**kwargs)


def test_bad_sources_and_indices(generator, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError):
        SyntheticMNIST(bad, num_samples=4)
    with pytest.raises(AugmentError, match="generator must be"):
        SyntheticMNIST(torch.nn.Linear(2, 2), num_samples=4)
    ds = SyntheticMNIST(generator, num_samples=4)
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds.__getitems__([0, -5])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            SyntheticMNIST(generator, num_samples=4, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_latents_equal_cpu_latents_and_dataset_runs(generator):
    idx = torch.arange(1000)
    assert torch.equal(index_latents(3, idx.cuda(), 100).cpu(), index_latents(3, idx, 100))
    ds = SyntheticMNIST(generator, num_samples=50, device="cuda", chunk=16)
    x, y = next(iter(DataLoader(ds, batch_size=50, collate_fn=collate_batch)))
    assert x.device.type == "cuda" and torch.equal(x, all_images(ds, 7).to(x.device))
    with pytest.raises(Exception, match="num_workers=0"):
        next(iter(DataLoader(ds, batch_size=5, num_workers=1)))


def test_float_and_huge_indices_are_refused_like_a_list(generator):
    ds = SyntheticMNIST(generator, num_samples=10, device="cpu")
    with pytest.raises(TypeError):
        ds[1.7]
    with pytest.raises(TypeError):
        ds.__getitems__([2.9])
    with pytest.raises(IndexError):
        ds[2 ** 63]


def test_seed_must_fit_in_64_bits(generator):
    SyntheticMNIST(generator, num_samples=4, seed=2 ** 64 - 1, device="cpu")
    with pytest.raises(ConfigError, match="2\\*\\*64"):
        SyntheticMNIST(generator, num_samples=4, seed=2 ** 64, device="cpu")


def test_numpy_integers_are_integers_and_other_types_are_clear_errors(generator):
    dataset = SyntheticMNIST(generator, num_samples=np.int64(10), seed=np.int64(1), device="cpu")
    assert len(dataset) == 10 and dataset[np.int64(3)][1] == dataset[3][1]
    assert torch.equal(dataset[torch.tensor(4)][0], dataset[4][0])
    for index in ("1", slice(0, 3), 1.0, [7, 9], np.array([7, 9]), torch.tensor([7, 9])):
        with pytest.raises(TypeError, match="indices must be integers"):  # not item 7 alone
            dataset[index]
    with pytest.raises(TypeError, match="at most 64 bits"):  # 2**64 - 1 must not wrap to -1, the last item
        dataset.__getitems__(np.array([2 ** 64 - 1], dtype=np.uint64))
    assert dataset.__getitems__(np.array([9], dtype=np.int32))[0][1] == dataset[9][1]
    images, labels = dataset.generate(range(5, 0))  # an empty range is an empty batch
    assert images.shape == (0, 1, 32, 32) and labels.shape == (0,)
    for kwargs, match in (({"classes": [2.5]}, "class ids must be integers"), ({"classes": 3}, "sequence"),
                          ({"classes": ["a"]}, "class ids must be integers"), ({"classes": [True]}, "integers"),
                          ({"class_weights": ["a"]}, "class_weights"), ({"class_weights": 1}, "class_weights")):
        with pytest.raises(ConfigError, match=match):
            SyntheticMNIST(generator, num_samples=10, device="cpu", **kwargs)
    assert SyntheticMNIST(generator, num_samples=10, device="cpu", classes=torch.tensor([1, 2])).class_ids == [1, 2]


# --------------------------------------------------------------------- torchvision drop-in


def test_pil_items_are_what_torchvision_mnist_yields(generator, tmp_path):
    """output='pil': (PIL 'L' 28x28, int), the transform applied to the PIL image; the same
    pixels a dump writes, so torchvision's MNIST of a dump and the drop-in agree item by item."""
    pil = SyntheticMNIST(generator, num_samples=24, seed=3, output="pil")
    img, label = pil[5]
    assert img.mode == "L" and img.size == (28, 28) and type(label) is int and label == 5
    dump_synthetic(tmp_path / "d", generator, 24, ["idx"], seed=3, test_samples=0)
    mnist = torchvision.datasets.MNIST(tmp_path / "d", train=True)
    for i in (0, 5, 23):
        mine, theirs = pil[i], mnist[i]
        assert np.array_equal(np.asarray(mine[0]), np.asarray(theirs[0])) and mine[1] == theirs[1]
    usual = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])  # the standard MNIST script's
    both = ConcatDataset([torchvision.datasets.MNIST(tmp_path / "d", train=True, transform=usual),
                          SyntheticMNIST(generator, num_samples=24, seed=3, output="pil", transform=usual)])
    for workers in (0, 2):
        x, y = next(iter(DataLoader(both, batch_size=48, num_workers=workers)))
        assert x.shape == (48, 1, 28, 28) and torch.equal(x[:24], x[24:]) and torch.equal(y[:24], y[24:])
    batched = pil.__getitems__([3, 1])
    assert [b[1] for b in batched] == [3, 1] and np.array_equal(np.asarray(batched[0][0]), np.asarray(pil[3][0]))


def sized_generator_file(path, generator, size) -> str:
    """``generator`` saved as a file that says it was trained on npz images of ``size``."""
    save_generator(path, generator, DataSignature("npz", tuple(str(c) for c in range(10)), size).metadata())
    return path


def test_pil_items_are_at_the_size_the_generator_was_trained_at(generator, tmp_path):
    """The file records its training data's size: PIL items are made at it (8x8 digits, 64x48
    images), image_size overrides it; a file that does not say (and the shipped one) means 28x28;
    item i is still one image whatever the batch or worker."""
    small = sized_generator_file(tmp_path / "small.safetensors", generator, (8, 8))
    pil = SyntheticMNIST(small, num_samples=20, seed=3, output="pil")
    assert pil.trained_on.size == pil.image_size == (8, 8) and pil[4][0].size == (8, 8)
    expected = to_uint8_images(pil.generate([4])[0], (8, 8))[0, 0].numpy()
    assert np.array_equal(np.asarray(pil[4][0]), expected)  # the model image resized 32 -> 8, as a dump
    batched = [np.asarray(img) for img, _ in pil.__getitems__([9, 4, 0])]
    assert np.array_equal(batched[1], expected)
    loader = DataLoader(SyntheticMNIST(small, num_samples=20, seed=3, output="pil", transform=T.PILToTensor()),
                        batch_size=7, num_workers=2)
    assert torch.equal(torch.cat([x for x, _ in loader])[4, 0], torch.from_numpy(expected))
    tall = SyntheticMNIST(sized_generator_file(tmp_path / "tall.safetensors", generator, (64, 48)), 4, output="pil")
    assert tall[0][0].size == (48, 64)  # PIL: (width, height)
    assert SyntheticMNIST(small, 4, output="pil", image_size=(12, 10))[0][0].size == (10, 12)
    assert SyntheticMNIST(small, 4, output="pil", image_size=28)[0][0].size == (28, 28)
    assert SyntheticMNIST(generator, 4, output="pil").image_size == (28, 28)  # a module: 28x28 as before
    assert SyntheticMNIST(None, 4, output="pil").trained_on == MNIST  # the shipped file, known by its SHA-256
    assert SyntheticMNIST(small, 4)[0][0].shape == (1, 32, 32)  # tensor items: the models' format, as RealMNIST's
    with pytest.raises(ConfigError, match="image_size is the size of PIL items"):
        SyntheticMNIST(small, 4, image_size=8)
    with pytest.raises(ConfigError, match="image_size must be a side or"):
        SyntheticMNIST(small, 4, output="pil", image_size=(0, 8))


def test_a_tensor_dataset_refuses_to_tensor_and_names_the_fix(generator):
    with pytest.raises(ConfigError, match="output='pil'"):
        SyntheticMNIST(generator, num_samples=4, transform=T.Compose([T.ToTensor()]))
    with pytest.raises(ConfigError, match="output must be one of"):
        SyntheticMNIST(generator, num_samples=4, output="numpy")


def test_to_mnist_tensor_is_to_tensor_of_the_pil_item(generator):
    tensor, pil = SyntheticMNIST(generator, 8, seed=2), SyntheticMNIST(generator, 8, seed=2, output="pil")
    assert torch.equal(to_mnist_tensor(tensor[4][0]), T.ToTensor()(pil[4][0]))


def test_random_single_item_reads_warn_once(generator):
    ds = SyntheticMNIST(generator, num_samples=640, seed=0)  # chunks of 64
    with pytest.warns(RandomAccessWarning, match="BatchedConcatDataset") as caught:
        for i in torch.randperm(640, generator=torch.Generator().manual_seed(0))[:40].tolist():
            ds[i]
    assert len([w for w in caught if issubclass(w.category, RandomAccessWarning)]) == 1
    quiet = SyntheticMNIST(generator, num_samples=640, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomAccessWarning)
        for i in range(200):  # sequential: one forward per chunk, no warning
            quiet[i]


def test_class_weights_may_be_a_mapping(generator):
    ds = SyntheticMNIST(generator, num_samples=6, class_weights={4: 2, 7: 1})
    assert ds.class_ids == [4, 7] and ds.counts_per_class() == {4: 4, 7: 2}
    with pytest.raises(ConfigError, match="not both"):
        SyntheticMNIST(generator, num_samples=6, classes=[1, 2], class_weights={4: 2, 7: 1})


def test_class_names_come_from_the_generator_file(tmp_path, generator):
    names = [f"c{k}" for k in range(10)]
    save_generator(tmp_path / "g.safetensors", generator, {"class_names": names})
    ds = SyntheticMNIST(tmp_path / "g.safetensors", num_samples=4)
    assert ds.classes == names and ds.class_to_idx["c3"] == 3
    assert SyntheticMNIST(generator, num_samples=4).classes == [str(k) for k in range(10)]
