"""Checking a device name before any work is done on it.

``torch.device("gpu")`` raises deep inside the first ``.to(...)``, and
``"cuda"`` on a machine without a GPU fails only when the first tensor moves,
after the database was loaded. :func:`resolve_device` parses the name with
torch and checks that the device exists here, so a script, the CLI and a
notebook can refuse a bad ``device=`` in their first line. ``"auto"`` (the
chapters' and the CLI's default) picks the best device here: CUDA, else
Apple's MPS, else the CPU, so a chapter opened on a Colab GPU runtime uses
the GPU with no edit.
"""
from __future__ import annotations

import torch

#: Device types fsrlib runs on.
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda", "mps")

#: The name that asks for the best device present (:func:`best_device`).
AUTO = "auto"


def available_devices() -> list[str]:
    """The devices this machine offers: ``"cpu"``, then ``"cuda:0"`` ... and ``"mps"`` where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def best_device() -> str:
    """The device ``"auto"`` means here: ``"cuda"`` where torch sees a GPU, else ``"mps"``, else ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if _mps_available() else "cpu"


def concrete_device(device: str) -> str:
    """``device`` with ``"auto"`` replaced by :func:`best_device` and anything else unchanged (unchecked): what the
    configs store, so a config saved on one machine reads the same on another."""
    return best_device() if isinstance(device, str) and device.strip().lower() == AUTO else device


def resolve_device(device: str | torch.device) -> str:
    """``device`` as torch spells it (``"cuda" -> "cuda"``, ``"cuda:1"``, ``"cpu"``), once it exists here;
    ``"auto"`` becomes :func:`best_device`.

    Raises ``ValueError`` naming the devices that do exist when ``device`` is
    not a torch device name (``"gpu"``), is a type fsrlib does not run on, or
    is absent on this machine (``"cuda"`` without a GPU, ``"cuda:3"`` with two).
    """
    if isinstance(device, str) and device.strip().lower() == AUTO:
        return best_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{device!r} is not a device name torch knows; use 'auto' or one of {DEVICE_TYPES} (with "
                         f"an index such as 'cuda:1' for another GPU). Available here: {', '.join(available_devices())}"
                         ) from None
    if parsed.type not in DEVICE_TYPES:
        raise ValueError(f"fsrlib runs on {', '.join(DEVICE_TYPES)}, not {parsed.type!r}. "
                         f"Available here: {', '.join(available_devices())}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asks for a CUDA GPU, but torch sees none here "
                             "(torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only torch build). "
                             f"Use device 'cpu'. Available here: {', '.join(available_devices())}")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s). "
                             f"Available here: {', '.join(available_devices())}")
    if parsed.type == "mps" and not _mps_available():
        raise ValueError(f"device {device!r} asks for Apple's Metal GPU, which torch does not find here "
                         f"(torch.backends.mps.is_available() is False). Available here: "
                         f"{', '.join(available_devices())}")
    return str(parsed)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
