"""Devices: which one a command runs on, and how to name the machine behind it in results."""

from __future__ import annotations

import os
import platform

import torch

from . import distributed
from .errors import AugmentError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device (checked). Under
    torchrun, 'auto' and 'cuda' mean this process's GPU, cuda:LOCAL_RANK."""
    name = distributed.local_device_name(name)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AugmentError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AugmentError(f"device {name!r} requested but CUDA is not available")
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
