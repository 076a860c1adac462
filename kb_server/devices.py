"""Which torch device a model runs on, for the embedder and the local LLM worker alike."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

# Device nodes of the GPUs torch can use on Linux (NVIDIA, AMD ROCm, WSL's GPU bridge).
_GPU_DEVICE_NODES: Final = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def torch_device(requested: str) -> str:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist here.

    "cpu", and "auto" on a Linux machine with no GPU device node, are the CPU without
    importing torch: a process that runs its models on ONNX Runtime then never loads torch
    (about 230 MB and 2 s). Raises ValueError naming a requested device that torch cannot use.
    """
    if requested == "cpu" or (requested == "auto" and not _gpu_may_exist()):
        return "cpu"
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


def _gpu_may_exist() -> bool:
    if not sys.platform.startswith("linux"):
        # Apple's MPS, or a platform whose GPUs only torch can tell.
        return True
    return any(Path(node).exists() for node in _GPU_DEVICE_NODES)
