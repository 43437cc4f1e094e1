import pytest
import torch

from augment.device import cpu_model, machine_description, resolve_device
from augment.errors import AugmentError


def test_cpu_and_auto_resolve_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(AugmentError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AugmentError, match="CUDA is not available"):
        resolve_device("cuda")


def test_machine_description_names_the_cpu_and_its_cores():
    text = machine_description(torch.device("cpu"))
    assert cpu_model() in text and "-core " in text and text.endswith("no GPU")
    assert "\n" not in text
