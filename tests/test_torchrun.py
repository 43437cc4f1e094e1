"""torch.distributed on CPU with gloo: 2 processes compute what 1 process computes."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from augment.checkpoint import load_checkpoint
from augment.errors import AugmentError
from augment.gan.models import Critic, Generator
from augment.torchrun import DistContext, strided_indices
from augment.training.data_parallel import local_slice, use_global_batchnorm
from augment.training.loop import resume, train
from augment.training.trainer import Trainer
from tests.conftest import script_env

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A normalization layer (BatchNorm in G, InstanceNorm in D) cancels the bias of the conv before
# it exactly, so that bias's true gradient is 0 and the computed one is rounding noise, which
# Adam scales up to lr-sized steps of arbitrary sign (and G's running_mean tracks it). These
# don't change the function, so for them we compare the networks' outputs instead.
CANCELLED_BIASES = {"G": ("net.0.bias", "net.3.bias", "net.6.bias"), "D": ("net.2.bias", "net.5.bias")}


def _two_rank_worker(rank, world, port, cfg, steps, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        trainer = Trainer(cfg, torch.device("cpu"), DistContext(rank, world, rank))
        for _ in range(steps):
            trainer.step()
        if rank == 0:
            torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict()}, out)
        dist.barrier()  # neither rank tears down its connections while the other still uses them
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("real_batches, step_impl, critic_augment", [
    ("fresh", "eager", "none"), ("shared", "eager", "none"), ("fresh", "fast", "none"),
    ("fresh", "fast", "translation,cutout")])
def test_two_process_step_equals_one_process_step(tmp_path, tiny_train_config, real_batches, step_impl,
                                                  critic_augment):
    cfg = dataclasses.replace(tiny_train_config, real_batches=real_batches, step_impl=step_impl,
                              critic_augment=critic_augment)
    steps = 2
    single = Trainer(dataclasses.replace(cfg, step_impl="eager"), torch.device("cpu"))
    for _ in range(steps):
        single.step()
    out = tmp_path / "two.pt"
    mp.start_processes(_two_rank_worker, args=(2, _free_port(), cfg, steps, str(out)), nprocs=2,
                       start_method="spawn")
    two = torch.load(out, weights_only=True)
    assert_same_function(single.G, single.D, two["G"], two["D"], cfg.model)


def assert_same_function(G, D, g_state, d_state, model_cfg):
    """Parameters equal to float tolerance (cancelled biases aside) and equal outputs."""
    for key, net, state in (("G", G, g_state), ("D", D, d_state)):
        for name, tensor in net.state_dict().items():
            if name in CANCELLED_BIASES[key] or name.endswith("running_mean"):
                continue
            torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5, msg=f"{key}.{name}")
    g2, d2 = Generator(model_cfg), Critic(model_cfg)
    g2.load_state_dict(g_state)
    d2.load_state_dict(d_state)
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(32, model_cfg.z_dim, generator=gen), torch.arange(32) % 10
    with torch.no_grad():
        fake = G.train()(z, y)
        torch.testing.assert_close(g2.train()(z, y), fake, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(d2(fake, y), D(fake, y), rtol=1e-4, atol=1e-4)


def _global_batchnorm_worker(rank, world, port, x, weight, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        bn = use_global_batchnorm(nn.Sequential(nn.BatchNorm2d(x.shape[1])))[0]
        local = x.chunk(world)[rank].clone().requires_grad_(True)
        y = bn(local)
        (y * weight.chunk(world)[rank]).sum().backward()
        grads = torch.cat([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)  # each rank holds its share of the parameter gradient
        ys, xgrads = [torch.empty_like(y) for _ in range(world)], [torch.empty_like(y) for _ in range(world)]
        dist.all_gather(ys, y.detach())
        dist.all_gather(xgrads, local.grad)
        if rank == 0:
            torch.save({"y": torch.cat(ys), "x_grad": torch.cat(xgrads), "param_grad": grads,
                        "running_mean": bn.running_mean, "running_var": bn.running_var}, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_global_batchnorm_equals_batchnorm_on_the_whole_batch(tmp_path):
    # a channel whose mean is 1000x its spread: E[x^2] - mean^2 would lose the variance in float32
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 4, 4, generator=gen) * torch.tensor([1.0, 0.5, 2.0])[:, None, None]
    x = x + torch.tensor([0.0, 500.0, -3.0])[:, None, None]
    weight = torch.randn(8, 3, 4, 4, generator=gen)
    out = tmp_path / "bn.pt"
    mp.start_processes(_global_batchnorm_worker, args=(2, _free_port(), x, weight, str(out)), nprocs=2,
                       start_method="spawn")
    two = torch.load(out, weights_only=True)
    bn = nn.BatchNorm2d(3)
    whole = x.clone().requires_grad_(True)
    y = bn(whole)
    (y * weight).sum().backward()
    torch.testing.assert_close(two["y"], y.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(two["x_grad"], whole.grad, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(two["param_grad"], torch.cat([bn.weight.grad, bn.bias.grad]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(two["running_mean"], bn.running_mean)
    torch.testing.assert_close(two["running_var"], bn.running_var)


def test_sharding_helpers():
    assert local_slice(8, DistContext(1, 2, 1)) == slice(4, 8)
    assert list(strided_indices(7, DistContext(1, 3, 1))) == [1, 4]
    with pytest.raises(AugmentError, match="not divisible"):
        local_slice(7, DistContext(0, 2, 0))


def _torchrun(args, env_extra=None, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "augment", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _tiny_args(idx_dir):
    return ["--data-dir", idx_dir, "--dataset", "idx", "--batch-size", 16, "--n-critic", 2,
            "--z-dim", 8, "--embed-dim", 4, "--g-width", 8, "--d-width", 8, "--device", "cpu",
            "--log-every", 1, "--checkpoint-every", 2, "--no-tensorboard", "--quiet"]


def test_cli_nproc_trains_and_resumes_with_another_world_size(tmp_path, idx_dir, tiny_train_config):
    run = tmp_path / "run"
    r = _torchrun(["train", "--nproc", 2, "--run-dir", run, "--max-steps", 2, "--json", *_tiny_args(idx_dir)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count('"generator"') == 1  # rank 0 alone reports
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    resume(run, {"max_steps": 4}, progress=False)  # 2 ranks -> 1 process
    cfg = dataclasses.replace(tiny_train_config, max_steps=4)
    train(cfg, tmp_path / "single", progress=False)
    a = load_checkpoint(run / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    G, D = Generator(cfg.model), Critic(cfg.model)
    G.load_state_dict(b["generator"])
    D.load_state_dict(b["critic"])
    assert_same_function(G, D, a["generator"], a["critic"], cfg.model)


def _dying_ranks(idx_dir, run, *args):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(ROOT / "tests" / "scripts" / "dying_rank.py"), str(idx_dir), str(run), *map(str, args)],
        cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=240)


def test_a_dying_rank_fails_the_job_instead_of_hanging(tmp_path, idx_dir):
    r = _dying_ranks(idx_dir, tmp_path / "run")
    assert r.returncode != 0
    assert "rank 1 dies on purpose" in r.stderr


def test_a_crashed_two_rank_run_resumes_to_the_same_log_means(tmp_path, idx_dir, tiny_train_config):
    # both ranks die in step 3: the step-2 checkpoint keeps steps 1-2's stats, averaged over the
    # ranks, and the resumed run (one process) still logs the mean of steps 1-3 at step 3
    crashed = tmp_path / "crashed"
    r = _dying_ranks(idx_dir, crashed, "all", 2)
    assert r.returncode != 0 and "dies on purpose" in r.stderr
    assert set(load_checkpoint(crashed / "checkpoints" / "last.pt")["log_window"]) >= {"loss_d", "loss_g"}
    assert not (crashed / "metrics.jsonl").exists()
    resume(crashed, {}, progress=False)
    cfg = dataclasses.replace(tiny_train_config, log_every=3, max_steps=4)
    train(cfg, tmp_path / "straight", progress=False)

    def rows(run):
        return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]

    crashed_rows, straight_rows = rows(crashed), rows(tmp_path / "straight")
    assert [r["step"] for r in crashed_rows] == [r["step"] for r in straight_rows] == [3, 4]
    for a, b in zip(crashed_rows, straight_rows):
        for key in ("loss_d", "loss_g", "gp", "wasserstein"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


def test_two_rank_dump_is_byte_identical_to_one_process(tmp_path, tiny_model_config):
    from augment.checkpoint import save_generator

    with torch.random.fork_rng():
        torch.manual_seed(0)
        save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    args = ["dump", tmp_path / "g.safetensors", "-n", 37, "-f", "idx", "-f", "png", "-f", "npz",
            "--device", "cpu", "--batch-size", 8, "-q", "--json"]
    single = subprocess.run([sys.executable, "-m", "augment", *map(str, args), "-o", tmp_path / "one"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "augment", *map(str, args), "-o", tmp_path / "two"], cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count('"num_samples"') == 1  # rank 0 alone reports
    files_one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    files_two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert files_one == files_two and len(files_one) > 37
    for rel in files_one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "one", "two"]  # no shards left
