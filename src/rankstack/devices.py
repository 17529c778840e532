"""Device and precision choice for the neural parts (encoders, rerankers, GPU scoring); imports torch only when called."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rankstack.errors import InputError

if TYPE_CHECKING:
    import torch

_DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
           "bf16": "bfloat16", "bfloat16": "bfloat16"}


#: CPU extensions that decide reduced-precision speed: bf16 matrix units (AMX, AVX512-BF16) make dtype="bf16"
#: several times faster than fp32; VNNI speeds up int8. Without bf16 units, bf16 is emulated (slower than fp32).
_BF16_UNITS = ("amx_bf16", "avx512_bf16")
_EXTENSIONS = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_description() -> dict:
    """This machine's CPU: {"model": name, "extensions": the ones of `_EXTENSIONS` it has} (Linux reads
    /proc/cpuinfo; elsewhere the extensions are unknown, an empty list)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    return describe_cpuinfo(info)


def describe_cpuinfo(info: str) -> dict:
    """`cpu_description` of a /proc/cpuinfo text: its first model name and first flags line."""
    model, flags = "", set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model or platform.processor() or platform.machine(),
            "extensions": [e for e in _EXTENSIONS if e in flags]}


def cpu_has_bf16_units() -> bool:
    """The CPU computes bf16 matrix products natively (AMX or AVX512-BF16), as far as /proc/cpuinfo tells."""
    return any(e in cpu_description()["extensions"] for e in _BF16_UNITS)


def select_device(device: str | None = None) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or None/'auto' (CUDA when available, else CPU)."""
    import torch
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {device!r} (expected 'cpu', 'cuda', 'cuda:N' or 'auto')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but CUDA is not available here; use device='cpu'")
    return dev


def select_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/'auto': float32 on CPU, float16 on CUDA; else 'fp32', 'fp16' or 'bf16' (fp16 only on CUDA)."""
    import torch
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r} (expected 'fp32', 'fp16' or 'bf16')")
    result = getattr(torch, _DTYPES[dtype])
    if result == torch.float16 and device.type == "cpu":
        raise InputError("fp16 is not supported on CPU: use fp32 (the default there) or bf16")
    return result
