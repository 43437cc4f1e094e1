"""Devices: which one a command runs on, where a module lives, and how to name the machine
behind it in results."""

from __future__ import annotations

import os
import platform

import torch
from torch import nn

from augment import torchrun
from augment.checks import is_integer
from augment.config import check_device_name
from augment.errors import ConfigError


def module_device(module: nn.Module, default: str = "cpu") -> torch.device:
    """The device of a module's first parameter (or buffer); ``default`` if it has neither."""
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    return tensor.device if tensor is not None else torch.device(default)


def resolve_device(name: str | int | torch.device) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device: 'cpu', 'cuda' or
    'cuda:N' (others, e.g. 'mps', raise ``ConfigError``, as does CUDA on a machine without it).
    Under torchrun, 'auto' and 'cuda' mean this process's GPU, cuda:LOCAL_RANK."""
    if is_integer(name):  # torch's convention: an int is a GPU
        name = f"cuda:{name}"
    name = torchrun.local_device_name(check_device_name(str(name)))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> str:
    """E.g. "NVIDIA H100 80GB HBM3" or "2-core AMD EPYC (x86_64), no GPU"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{os.cpu_count()}-core {cpu_model()} ({platform.machine()}), no GPU"
