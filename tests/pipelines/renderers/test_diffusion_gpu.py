"""The diffusion renderer on a CUDA device (tiny random models): the garment stays exact with every GPU lever.

Run on a GPU host (`bench/gpu_device_check.sh` runs them on a lent device); skipped with the reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipelines.renderers.diffusion import DiffusionRenderer
from tests.pipelines.renderers.tiny_models import tiny_options

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU host)"),
]

TUNED = {"attention": "sdpa", "channels_last": True, "fuse_qkv": True, "fast_vae_encode": True}


def _core(job: Any) -> np.ndarray:
    return job.keep_mask >= 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_with_every_lever_keeps_the_garment_exact(
    tiny_sd15: dict[str, Path], make_job: Any, dtype: str
) -> None:
    renderer = DiffusionRenderer.from_options(tiny_options(tiny_sd15, dtype=dtype, **TUNED), "cuda")
    jobs = [make_job(variant=variant, seed=7 + variant) for variant in range(4)]
    outputs = renderer(jobs)
    assert [out.image.shape for out in outputs] == [(64, 64, 3)] * 4
    for job, out in zip(jobs, outputs, strict=True):
        assert _core(job).sum() > 300
        np.testing.assert_array_equal(out.image[_core(job)], job.placed_rgba[..., :3][_core(job)])
        outside = job.garment_mask == 0
        assert np.abs(out.image[outside].astype(int) - job.placed_rgba[..., :3][outside]).mean() > 5
    assert outputs[0].params["dtype"] == dtype


def test_a_compiled_renderer_keeps_the_garment_exact(tiny_sd15: dict[str, Path], make_job: Any) -> None:
    renderer = DiffusionRenderer.from_options(
        tiny_options(tiny_sd15, dtype="bfloat16", compile="default", **TUNED), "cuda"
    )
    jobs = [make_job(variant=variant, seed=11 + variant) for variant in range(2)]
    for _ in range(2):  # the second call runs the compiled graphs, not the first call's compilation
        outputs = renderer(jobs)
    for job, out in zip(jobs, outputs, strict=True):
        np.testing.assert_array_equal(out.image[_core(job)], job.placed_rgba[..., :3][_core(job)])
    assert renderer.settings.compile == "default"
