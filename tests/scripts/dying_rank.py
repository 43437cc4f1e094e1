"""Run by tests/test_torchrun.py under torchrun: ranks die on purpose in the middle of training.

    python -m torch.distributed.run --nproc-per-node=2 dying_rank.py IDX_DIR RUN_DIR [RANKS [STEP]]

RANKS: the rank that dies (default 1) or ``all``; it dies in step STEP + 1 (default 1, i.e. in
its second step). The run checkpoints every 2 steps and logs every 3, for at most 4 steps.
"""

import os
import sys

import torch

from augment.config import ModelConfig, TrainConfig
from augment.training.loop import train
from augment.training.trainer import Trainer

dying_ranks = sys.argv[3] if len(sys.argv) > 3 else "1"
dying_at = int(sys.argv[4]) if len(sys.argv) > 4 else 1
step = Trainer.step


def dying_step(self):
    if (dying_ranks == "all" or self.dist.rank == int(dying_ranks)) and self.step_count == dying_at:
        raise SystemExit(f"rank {self.dist.rank} dies on purpose")
    return step(self)


Trainer.step = dying_step
cfg = TrainConfig(model=ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8), data_dir=sys.argv[1],
                  dataset="idx", batch_size=16, n_critic=2, max_steps=4, log_every=3, checkpoint_every=2,
                  sample_every=2, device="cpu", tensorboard=False)
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
train(cfg, sys.argv[2], progress=False)
