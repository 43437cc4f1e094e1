"""Run by tests/test_reliability.py in a subprocess that the test SIGKILLs.

usage: killable_train.py DATA_DIR RUN_DIR MAX_STEPS [hang-in-checkpoint-write STEP]

With ``hang-in-checkpoint-write STEP``, the checkpoint write of that step writes half of its
temp file, prints WRITING and sleeps, so the test can kill the process mid-write.
"""

import sys
import time

import torch

import augment.checkpoint as ckpt
from augment.config import ModelConfig, TrainConfig
from augment.training.loop import resume, train

data_dir, run_dir, max_steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)

if len(sys.argv) > 4 and sys.argv[4] == "hang-in-checkpoint-write":
    hang_step = int(sys.argv[5])
    real_save = torch.save

    def hanging_save(obj, f, *args, **kwargs):  # f: the open temp file
        if isinstance(obj, dict) and obj.get("step") == hang_step:
            real_save(obj, f, *args, **kwargs)
            f.flush()
            f.truncate(f.seek(0, 2) // 2)
            f.flush()
            print("WRITING", flush=True)
            time.sleep(600)
        return real_save(obj, f, *args, **kwargs)

    ckpt.torch.save = hanging_save

cfg = TrainConfig(model=ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8), data_dir=data_dir,
                  dataset="idx", batch_size=16, n_critic=2, max_steps=max_steps, checkpoint_every=1,
                  log_every=1, sample_every=1000, device="cpu", tensorboard=False)
if len(sys.argv) > 4 and sys.argv[4] == "resume":
    resume(run_dir, {"max_steps": max_steps}, progress=False)
else:
    train(cfg, run_dir, progress=False)
print("DONE", flush=True)
