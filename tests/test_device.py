import pytest
import torch

from augment.device import cpu_model, machine_description, resolve_device
from augment.errors import AugmentError


def test_cpu_and_auto_resolve_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(AugmentError, match="'cuda:1' requested but CUDA is not available"):
        resolve_device(1)  # torch's convention: an int names a GPU


@pytest.mark.parametrize("name", ["gpu0", "mps", "meta", "cuda:x", "cuda:-1", "CPU"])
def test_devices_the_library_does_not_run_on_are_refused_by_name(name):
    """torch parses 'mps' and 'meta', but nothing here runs there: one clear error, not a
    traceback from deep inside."""
    with pytest.raises(AugmentError, match=f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got '{name}'"):
        resolve_device(name)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AugmentError, match="CUDA is not available"):
        resolve_device("cuda")


def test_machine_description_names_the_cpu_and_its_cores():
    text = machine_description(torch.device("cpu"))
    assert cpu_model() in text and "-core " in text and text.endswith("no GPU")
    assert "\n" not in text
