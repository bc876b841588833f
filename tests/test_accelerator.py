"""The accelerator setting: models on the CPU unless told, and a GPU asked for where there is none refused at once,
in one line, before anything is written (CI has no GPU; the CUDA path itself is measured on a lent device)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from facesearch.errors import AcceleratorUnavailable
from facesearch.vision import accelerator

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "data" / "lfw-dev" / "images" / "AJ_Cook"
NO_GPU = "CUDAExecutionProvider" not in ort.get_available_providers()


def facesearch(home: Path, *args: str, accelerator_name: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACESEARCH_ACCELERATOR": accelerator_name, "COLUMNS": "200"}
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_models_run_on_the_cpu_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accelerator.ENVIRONMENT, raising=False)
    assert accelerator.chosen() == "cpu"
    assert accelerator.onnx_providers() == ["CPUExecutionProvider"]


@pytest.mark.skipif(not NO_GPU, reason="this onnxruntime has a CUDA provider")
def test_cuda_where_onnxruntime_has_none_is_refused_and_the_choice_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(accelerator.ENVIRONMENT, "cpu")
    with pytest.raises(AcceleratorUnavailable, match="onnxruntime-gpu"):
        accelerator.use("cuda")
    assert os.environ[accelerator.ENVIRONMENT] == "cpu"


@pytest.mark.skipif(not NO_GPU, reason="this onnxruntime has a CUDA provider")
@pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/lfw-dev is not here")
def test_the_cli_refuses_cuda_without_a_gpu_before_writing_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = facesearch(home, "index", str(PHOTOS), "--collection", "c", accelerator_name="cuda")
    assert done.returncode == 1
    assert "onnxruntime-gpu" in done.stderr and "Traceback" not in done.stderr
    assert not home.exists()


def test_an_unknown_accelerator_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    done = facesearch(tmp_path / "home", "status", accelerator_name="tpu")
    assert done.returncode == 2
    assert "accelerator" in done.stderr and "'cpu' or 'cuda'" in done.stderr and "Traceback" not in done.stderr
