"""Run by tests/test_distributed.py under torchrun: rank 1 dies during its second step."""

import os
import sys

import torch

from augment.config import ModelConfig, TrainConfig
from augment.training import Trainer, train

step = Trainer.step


def dying_step(self):
    if self.dist.rank == 1 and self.step_count == 1:
        raise SystemExit("rank 1 dies on purpose")
    return step(self)


Trainer.step = dying_step
cfg = TrainConfig(model=ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8), data_dir=sys.argv[1],
                  dataset="idx", batch_size=16, n_critic=2, max_steps=50, device="cpu",
                  tensorboard=False)
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
train(cfg, sys.argv[2], progress=False)
