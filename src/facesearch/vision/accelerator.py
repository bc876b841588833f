"""Where the models run: the CPU (the default, and what CI tests) or an NVIDIA GPU through onnxruntime-gpu.

The choice is the ``accelerator`` setting (``FACESEARCH_ACCELERATOR`` or ``config.toml``). The engine records it
in the process environment when it opens a data folder, so that the worker processes of an ingest, which load
their own models, run them where the parent does. Asking for ``cuda`` where onnxruntime has no CUDA provider
(the CPU wheel, or no driver) is an error at once, never a silent fall back to a CPU twenty times slower.
"""

from __future__ import annotations

import os

from facesearch.errors import AcceleratorUnavailable

ENVIRONMENT = "FACESEARCH_ACCELERATOR"
ACCELERATORS = ("cpu", "cuda")
CPU_PROVIDERS = ["CPUExecutionProvider"]
CUDA_PROVIDER = "CUDAExecutionProvider"


def chosen() -> str:
    """The accelerator this process runs models on (``"cpu"`` unless set)."""
    value = os.environ.get(ENVIRONMENT, "").strip().lower() or "cpu"
    if value not in ACCELERATORS:
        raise AcceleratorUnavailable(f"unknown accelerator {value!r} (use one of: {', '.join(ACCELERATORS)})")
    return value


def onnx_providers() -> list[str]:
    """The onnxruntime execution providers for a new model session, in order of preference.

    Raises :class:`AcceleratorUnavailable` when ``cuda`` is chosen and onnxruntime cannot use a GPU."""
    if chosen() == "cpu":
        return list(CPU_PROVIDERS)
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise AcceleratorUnavailable(
            "accelerator 'cuda' needs onnxruntime with its CUDA provider (pip install onnxruntime-gpu in place "
            f"of onnxruntime, and an NVIDIA driver); this onnxruntime offers {', '.join(available)}"
        )
    # Operators the CUDA provider lacks fall back to the CPU, node by node.
    return [CUDA_PROVIDER, *CPU_PROVIDERS]


def use(accelerator: str) -> None:
    """Run this process's models, and its ingest workers', on ``accelerator``; checked at once."""
    previous = os.environ.get(ENVIRONMENT)
    os.environ[ENVIRONMENT] = accelerator
    try:
        onnx_providers()
    except AcceleratorUnavailable:
        if previous is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = previous
        raise
