"""The diffusion renderer run for real on tiny random models: wiring, exact garment, batching, retries, errors."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipelines.errors import DeviceOutOfMemoryError, TransientError
from pipelines.model_sources import ModelNotAvailableError
from pipelines.renderers.diffusion import DiffusionRenderer, check_inputs
from tests.pipelines.renderers.tiny_models import tiny_options

# Batched CPU kernels may round differently from single-image ones; 2 of 255 levels is far below any visible change.
BATCH_TOLERANCE = 2


def core(job: Any) -> np.ndarray:
    """The eroded garment core: pixels that must equal the placed source exactly."""
    return job.keep_mask >= 1.0


def test_renders_canvas_sized_rgb_with_garment_pixels_exact(
    sd15_renderer: DiffusionRenderer, make_job: Any
) -> None:
    job = make_job()
    before = copy.deepcopy(job)
    [out] = sd15_renderer([job])
    assert out.image.shape == (64, 64, 3) and out.image.dtype == np.uint8
    # The printed text and noise inside the eroded mask come back bit for bit.
    assert core(job).sum() > 300
    np.testing.assert_array_equal(out.image[core(job)], job.placed_rgba[..., :3][core(job)])
    # Outside the garment the model painted something (not the transparent canvas's black).
    outside = job.garment_mask == 0
    assert np.abs(out.image[outside].astype(int) - job.placed_rgba[..., :3][outside]).mean() > 5
    # Inputs are never mutated.
    for name in ("placed_rgba", "inpaint_mask", "keep_mask", "control_image"):
        np.testing.assert_array_equal(getattr(job, name), getattr(before, name))


def test_metadata_holds_everything_needed_to_regenerate(
    sd15_renderer: DiffusionRenderer, make_job: Any
) -> None:
    [first] = sd15_renderer([make_job(seed=11)])
    params = first.params
    for key in (
        "models",
        "dtype",
        "scheduler",
        "steps",
        "guidance_scale",
        "controlnet_scales",
        "prompt",
        "negative_prompt",
        "seed",
        "diversity",
        "size",
        "attempts",
    ):
        assert key in params, key
    assert params["seed"] == first.seed == 11 and params["attempts"] == 1
    assert params["models"]["inpaint"]["commit"] == "local"
    assert "white logo tee" in params["prompt"]
    # Re-rendering a job rebuilt with the recorded seed gives the same pixels.
    [again] = sd15_renderer([make_job(seed=params["seed"])])
    np.testing.assert_array_equal(again.image, first.image)


def test_batch_of_8_equals_each_job_alone(sd15_renderer: DiffusionRenderer, make_job: Any) -> None:
    jobs = [make_job(sku=f"SKU-{i % 3}", variant=i % 2, seed=100 + i) for i in range(8)]
    batched = sd15_renderer(jobs)
    for job, in_batch in list(zip(jobs, batched, strict=True))[::3]:  # 3 of the 8 alone keeps the suite fast
        [alone] = sd15_renderer([job])
        assert in_batch.seed == alone.seed and in_batch.params["prompt"] == alone.params["prompt"]
        diff = np.abs(in_batch.image.astype(int) - alone.image.astype(int)).max()
        assert diff <= BATCH_TOLERANCE, f"{job.job_id}: batch differs from alone by {diff}"
        np.testing.assert_array_equal(in_batch.image[core(job)], alone.image[core(job)])


def test_mixed_canvas_sizes_come_back_in_order_each_equal_to_alone(
    sd15_renderer: DiffusionRenderer, make_job: Any
) -> None:
    """Two canvas sizes interleaved in one call: input order, own size, each as if rendered alone."""
    jobs = [
        make_job(sku="A", seed=1),
        make_job(sku="B", seed=2, size=48),
        make_job(sku="C", variant=1, seed=3),
    ]
    batched = sd15_renderer(jobs)
    assert [out.job_id for out in batched] == [job.job_id for job in jobs]
    for job, in_batch in zip(jobs, batched, strict=True):
        assert in_batch.image.shape == (job.size[1], job.size[0], 3)
        [alone] = sd15_renderer([job])
        diff = np.abs(in_batch.image.astype(int) - alone.image.astype(int)).max()
        assert diff <= BATCH_TOLERANCE, f"{job.job_id}: mixed batch differs from alone by {diff}"
        np.testing.assert_array_equal(in_batch.image[core(job)], job.placed_rgba[..., :3][core(job)])


def test_different_seeds_and_variants_give_different_images(
    sd15_renderer: DiffusionRenderer, make_job: Any
) -> None:
    a, b = sd15_renderer([make_job(variant=0, seed=1), make_job(variant=1, seed=2)])
    assert a.params["diversity"] != b.params["diversity"]
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() > 10


_SUBPROCESS_RENDER = """
import hashlib, sys
sys.path[:0] = [{root!r}]
from tests.pipelines.renderers.tiny_models import tiny_options, printed_garment
from pipelines.masks import build_masks
from pipelines.renderers.base import RenderJob
from pipelines.renderers.diffusion import DiffusionRenderer
import numpy as np
paths = {paths!r}
rgba = printed_garment(64)
m = build_masks(rgba[..., 3], 2, 3)
job = RenderJob(job_id="j", sku="S", pose="front", variant=0, seed=3, placed_rgba=rgba, garment_mask=m.garment_mask,
                inpaint_mask=m.inpaint_mask, keep_mask=m.keep_mask, control_image=np.zeros((64, 64, 3), np.uint8),
                keypoints=np.zeros((18, 3), np.float32))
[out] = DiffusionRenderer.from_options(tiny_options({{k: __import__("pathlib").Path(v) for k, v in paths.items()}}), "cpu")([job])
print(hashlib.sha256(out.image.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_identical_across_two_processes(tiny_sd15: dict[str, Path]) -> None:
    root = str(Path(__file__).resolve().parents[3])
    script = _SUBPROCESS_RENDER.format(root=root, paths={k: str(v) for k, v in tiny_sd15.items()})
    # Both processes start together: the check is about process identity, not order.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    digests = [out.split()[-1] for out, _ in outputs]
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_black_image_re_renders_with_next_seed(
    tiny_sd15: dict[str, Path], make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = DiffusionRenderer.from_options(tiny_options(tiny_sd15, garment=False), "cpu")
    [reference] = renderer([make_job(seed=21)])
    decode = renderer.pipe.vae.decode
    calls = {"n": 0}

    def nan_first_decode(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        out = decode(*args, **kwargs)
        if calls["n"] == 1:  # the classic fp16 failure: the first decode comes back NaN
            out[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(renderer.pipe.vae, "decode", nan_first_decode)
    [out] = renderer([make_job(seed=20)])
    assert calls["n"] == 2
    assert out.seed == 21 and out.params["attempts"] == 2 and out.params["job_seed"] == 20
    assert any("nan at seed 20" in flag for flag in out.flags)
    np.testing.assert_array_equal(out.image, reference.image)  # the retry is exactly the seed-21 image


def test_black_images_give_up_after_max_attempts(
    tiny_sd15: dict[str, Path], make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = DiffusionRenderer.from_options(tiny_options(tiny_sd15, garment=False, max_attempts=2), "cpu")
    decode = renderer.pipe.vae.decode
    monkeypatch.setattr(
        renderer.pipe.vae, "decode", lambda *a, **k: (torch.full_like(decode(*a, **k)[0], -1.0),)
    )
    [out] = renderer([make_job(seed=5)])
    assert out.params["attempts"] == 2 and out.seed == 6
    assert any("failed quality check after 2 attempts: black" in flag for flag in out.flags)
    # Even a failed image keeps the garment exact.
    np.testing.assert_array_equal(
        out.image[core(make_job())], make_job().placed_rgba[..., :3][core(make_job())]
    )


def test_failed_quality_check_re_renders(tiny_sd15: dict[str, Path], make_job: Any) -> None:
    seen: list[float] = []

    def reject_first(image: np.ndarray) -> str | None:
        seen.append(float(image.mean()))
        return "too dull" if len(seen) == 1 else None

    renderer = DiffusionRenderer(tiny_options(tiny_sd15, garment=False), "cpu", quality_check=reject_first)
    [out] = renderer([make_job(seed=9)])
    assert out.seed == 10 and out.params["attempts"] == 2 and "re-rendered: too dull at seed 9" in out.flags


class _OomAbove:
    """Wraps a pipeline: a call with more than `limit` prompts raises CUDA out-of-memory."""

    def __init__(self, pipe: Any, limit: int) -> None:
        self.pipe, self.limit, self.batch_sizes = pipe, limit, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.batch_sizes.append(len(kwargs["prompt"]))
        if len(kwargs["prompt"]) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.pipe(**kwargs)


def test_out_of_memory_splits_the_batch_in_half(
    sd15_renderer: DiffusionRenderer, make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [make_job(sku=f"S{i}", seed=40 + i) for i in range(3)]
    unsplit = sd15_renderer(jobs)
    wrapper = _OomAbove(sd15_renderer.pipe, limit=1)
    monkeypatch.setattr(sd15_renderer, "pipe", wrapper)
    split = sd15_renderer(jobs)
    assert wrapper.batch_sizes == [3, 1, 2, 1, 1]  # halved recursively down to single images
    for a, b, job in zip(unsplit, split, jobs, strict=True):
        assert a.seed == b.seed and np.abs(a.image.astype(int) - b.image.astype(int)).max() <= BATCH_TOLERANCE
        np.testing.assert_array_equal(a.image[core(job)], b.image[core(job)])


def test_out_of_memory_at_batch_one_is_raised_as_a_transient_device_error(
    sd15_renderer: DiffusionRenderer, make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper = _OomAbove(sd15_renderer.pipe, limit=0)
    monkeypatch.setattr(sd15_renderer, "pipe", wrapper)
    with pytest.raises(DeviceOutOfMemoryError, match="even at batch 1") as raised:
        sd15_renderer([make_job(), make_job(seed=8)])
    assert isinstance(raised.value, TransientError) and isinstance(
        raised.value.__cause__, torch.OutOfMemoryError
    )
    assert wrapper.batch_sizes == [2, 1]


def test_long_prompt_is_truncated_with_a_flag_not_a_crash(
    sd15_renderer: DiffusionRenderer, make_job: Any
) -> None:
    [out] = sd15_renderer(
        [make_job(prompt="embroidered floral pattern " * 200, negative_prompt="ugly " * 300)]
    )
    assert "prompt truncated to the text encoder's window" in out.flags
    assert "negative prompt truncated to the text encoder's window" in out.flags
    assert len(sd15_renderer.pipe.tokenizer(out.params["prompt"]).input_ids) <= 77


def test_missing_model_is_a_clear_error_before_any_load(tiny_sd15: dict[str, Path]) -> None:
    options = tiny_options(tiny_sd15)
    options["models"]["controlnet_pose"] = {"id": "onmodel-tests/no-such-controlnet", "revision": "0123abc"}
    with pytest.raises(ModelNotAvailableError) as info:
        DiffusionRenderer.from_options(options, "cpu")
    message = str(info.value)
    assert "onmodel-tests/no-such-controlnet" in message and "0123abc" in message
    assert "onmodel models download configs/sd15.yaml" in message and "cache" in message


def test_sdxl_family_renders_with_garment_exact(tiny_sdxl: dict[str, Path], make_job: Any) -> None:
    renderer = DiffusionRenderer.from_options(tiny_options(tiny_sdxl, family="sdxl"), "cpu")
    job = make_job()
    [out] = renderer([job])
    assert out.image.shape == (64, 64, 3) and out.params["family"] == "sdxl"
    np.testing.assert_array_equal(out.image[core(job)], job.placed_rgba[..., :3][core(job)])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dtype": "float8"}, "dtype must be one of"),
        ({"dtype": "float16"}, "needs a CUDA device"),
        ({"compile": "fast"}, "compile must be one of"),
        ({"scheduler": {"name": "plms2"}}, "scheduler.name"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"resolution": {"width": 500, "height": 768}}, "multiples of 8"),
        ({"garment_control": "depth"}, "garment_control"),
    ],
)
def test_bad_options_are_explained(tiny_sd15: dict[str, Path], change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_inputs({**tiny_options(tiny_sd15), **change}, "cpu")
