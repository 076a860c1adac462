"""Which torch device a model runs on, for the embedder and the local LLM worker alike."""

from __future__ import annotations


def torch_device(requested: str) -> str:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist here.

    Raises ValueError naming a requested device that torch cannot use.
    """
    # Imported here: modules that only need the name of a device must not pay for torch.
    import torch

    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(device for device, present in available.items() if present)
    if not available.get(requested, False):
        raise ValueError(f"device {requested!r} was requested but torch cannot use it here")
    return requested
