"""Pick the compute device once: CUDA, then Apple's MPS, then the CPU.

Set the environment variable ``SCALINGLAB_DEVICE`` (``cpu``, ``cuda``, ``mps``) or pass
``force_cpu=True`` to override the automatic choice -- e.g. to reproduce CPU numbers on a
GPU machine.
"""

from __future__ import annotations

import contextlib
import os

import torch

_VALID = ("cpu", "cuda", "mps")


def get_device(force_cpu: bool = False) -> torch.device:
    """Return the best available :class:`torch.device` (CUDA > MPS > CPU)."""
    requested = os.environ.get("SCALINGLAB_DEVICE", "").strip().lower()
    if force_cpu or requested == "cpu":
        return torch.device("cpu")
    if requested:
        if requested not in _VALID:
            raise ValueError(f"SCALINGLAB_DEVICE must be one of {_VALID}, got {requested!r}")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_label(device: torch.device | str) -> str:
    """How records name the device that made them: ``"cpu"``, ``"mps"`` or ``"cuda:<GPU
    model>"`` (e.g. ``"cuda:NVIDIA H100 80GB HBM3"``; CUDA runs use bf16 autocast, see
    :func:`autocast`). Under Slurm, the GPU is the one assigned to the task
    (``CUDA_VISIBLE_DEVICES``), which torch numbers 0."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def autocast(device: torch.device):
    """Mixed precision where it pays: bf16 autocast on CUDA, a no-op elsewhere.

    On the CPU we keep float32 so that results are exact enough to compare with NumPy
    and SciPy references in the tests.
    """
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
