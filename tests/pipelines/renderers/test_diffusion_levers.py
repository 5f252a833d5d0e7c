"""What we patch in diffusers, pinned: the private methods the fast encode overrides; each lever, run for real."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionControlNetInpaintPipeline, StableDiffusionXLControlNetInpaintPipeline
from diffusers.models.attention_processor import AttnProcessor, FusedAttnProcessor2_0

from pipelines.renderers.diffusion import (
    DiffusionRenderer,
    OnmodelSD15Pipeline,
    OnmodelSDXLPipeline,
    _FastMaskEncodeMixin,
    image_problem,
)
from tests.pipelines.renderers.test_diffusion import BATCH_TOLERANCE, core
from tests.pipelines.renderers.tiny_models import tiny_options

PARENTS = {
    OnmodelSD15Pipeline: StableDiffusionControlNetInpaintPipeline,
    OnmodelSDXLPipeline: StableDiffusionXLControlNetInpaintPipeline,
}
OVERRIDDEN = ("_encode_vae_image", "prepare_mask_latents")
RECHECK = (
    "re-check _FastMaskEncodeMixin in pipelines/renderers/diffusion.py against diffusers' "
    "pipelines/controlnet/pipeline_controlnet_inpaint*.py (the overrides, their super() calls and the "
    "4-channel / None masked-image branches they rely on) before widening the diffusers pin in pyproject.toml"
)
# A lever swaps kernels or memory layout: float32 sums in another order, off by a level or two after decoding.
LEVER_TOLERANCE = BATCH_TOLERANCE


def count_encodes(renderer: DiffusionRenderer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the renderer's vae.encode; the returned list collects the batch size of every call."""
    sizes: list[int] = []
    encode = renderer.pipe.vae.encode

    def counting(image: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sizes.append(int(image.shape[0]))
        return encode(image, *args, **kwargs)

    monkeypatch.setattr(renderer.pipe.vae, "encode", counting)
    return sizes


def assert_valid_with_exact_garment(outputs: list[Any], jobs: list[Any]) -> None:
    """Canvas-sized uint8 RGB, not black or NaN, the garment core equal to the placed source."""
    for out, job in zip(outputs, jobs, strict=True):
        assert out.image.shape == (job.size[1], job.size[0], 3) and out.image.dtype == np.uint8
        assert image_problem(out.image / 255.0) is None, out.job_id
        np.testing.assert_array_equal(out.image[core(job)], job.placed_rgba[..., :3][core(job)])


@pytest.mark.parametrize("ours", list(PARENTS), ids=lambda cls: cls.__name__)
def test_overridden_private_methods_still_match_diffusers(ours: type) -> None:
    """Each overridden private method exists in diffusers with the parameters the mixin takes and forwards."""
    parent = PARENTS[ours]
    problems = []
    for name in OVERRIDDEN:
        theirs = getattr(parent, name, None)
        if theirs is None:
            problems.append(f"{parent.__name__}.{name} no longer exists")
            continue
        # The mixin forwards its arguments positionally to super(): names and order must both still match.
        expected = list(inspect.signature(theirs).parameters)
        accepted = list(inspect.signature(getattr(_FastMaskEncodeMixin, name)).parameters)
        if accepted != expected:
            problems.append(
                f"{parent.__name__}.{name} takes {expected}, the mixin overrides it as {accepted}"
            )
        if getattr(ours, name) is not getattr(_FastMaskEncodeMixin, name):
            problems.append(f"{ours.__name__}.{name} no longer resolves to the mixin's override")
    assert not problems, f"diffusers {diffusers.__version__}: {'; '.join(problems)}; {RECHECK}."


def test_diffusers_skips_the_encode_for_what_the_mixin_passes_a_four_channel_unet() -> None:
    """SD 1.5 takes a 4-channel masked image as ready latents, SDXL takes None: neither VAE-encodes."""
    encoded: list[torch.Tensor] = []
    fake = SimpleNamespace(
        vae_scale_factor=2, _encode_vae_image=lambda image, generator: encoded.append(image)
    )
    mask, latents = torch.ones(2, 1, 16, 16), torch.randn(2, 4, 8, 8)
    args = (2, 16, 16, torch.float32, torch.device("cpu"), None, False)
    _, sd15 = StableDiffusionControlNetInpaintPipeline.prepare_mask_latents(fake, mask, latents, *args)
    _, sdxl = StableDiffusionXLControlNetInpaintPipeline.prepare_mask_latents(fake, mask, None, *args)
    assert not encoded, f"diffusers {diffusers.__version__} VAE-encoded what the mixin passes; {RECHECK}."
    assert torch.equal(sd15, latents), f"SD 1.5 no longer passes 4-channel latents through; {RECHECK}."
    assert sdxl is None, f"SDXL no longer returns None latents for a None masked image; {RECHECK}."


def test_fast_vae_encode_encodes_each_distinct_masked_image_once(
    sd15_renderer: DiffusionRenderer,
    tiny_sd15: dict[str, Path],
    make_job: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stock: one encode per image; fast: one batched call over the distinct masked images; garment exact."""
    # Two variants of one garment share their masked image; the third job is another garment.
    jobs = [make_job(seed=1), make_job(seed=2), make_job(sku="SKU-2", variant=1, seed=3)]
    stock = DiffusionRenderer.from_options(tiny_options(tiny_sd15, fast_vae_encode=False), "cpu")
    stock_calls, fast_calls = count_encodes(stock, monkeypatch), count_encodes(sd15_renderer, monkeypatch)
    stock_out, fast_out = stock(jobs), sd15_renderer(jobs)
    # 9-channel UNet at strength 1: only the masked image is encoded (the init latents are pure noise).
    assert stock_calls == [1, 1, 1]
    assert fast_calls == [2]
    assert_valid_with_exact_garment(stock_out, jobs)
    assert_valid_with_exact_garment(fast_out, jobs)


def test_four_channel_unet_skips_the_masked_image_encode(
    tiny_four_channel: tuple[str, dict[str, Path]],
    make_job: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A non-inpainting UNet renders (SD 1.5 and SDXL), encoding only the init images it blends back in."""
    family, paths = tiny_four_channel
    renderer = DiffusionRenderer.from_options(tiny_options(paths, family=family, garment=False), "cpu")
    assert renderer.pipe.unet.config.in_channels == 4
    calls = count_encodes(renderer, monkeypatch)
    jobs = [make_job(seed=1), make_job(sku="SKU-2", variant=1, seed=2)]
    outputs = renderer(jobs)
    # One batched call for the two distinct init images; the unused masked-image encode would be a 2nd call.
    assert calls == [2]
    assert_valid_with_exact_garment(outputs, jobs)


def _attention_processors(renderer: DiffusionRenderer) -> set[type]:
    """Attention processor classes in the UNet and every ControlNet."""
    nets = [renderer.pipe.unet, *renderer.pipe.controlnet.nets]
    return {type(p) for net in nets for p in net.attn_processors.values()}


@pytest.mark.parametrize(
    ("change", "took_effect"),
    [
        (
            {"channels_last": True},
            lambda r: r.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last),
        ),
        ({"attention": "eager"}, lambda r: _attention_processors(r) == {AttnProcessor}),
        # diffusers 0.42 fuses only the UNet (ControlNets keep separate q/k/v): check what it does fuse.
        (
            {"fuse_qkv": True},
            lambda r: {type(p) for p in r.pipe.unet.attn_processors.values()} == {FusedAttnProcessor2_0},
        ),
    ],
    ids=["channels_last", "eager_attention", "fuse_qkv"],
)
def test_lever_matches_the_default_render_within_rounding(
    change: dict[str, Any],
    took_effect: Callable[[DiffusionRenderer], bool],
    sd15_renderer: DiffusionRenderer,
    tiny_sd15: dict[str, Path],
    make_job: Callable[..., Any],
) -> None:
    """Same seeds through another memory format / attention kernel / fused QKV: same image within rounding."""
    renderer = DiffusionRenderer.from_options(tiny_options(tiny_sd15, **change), "cpu")
    assert took_effect(renderer), f"{change} did not reach the models"
    jobs = [make_job(seed=1), make_job(sku="SKU-2", variant=1, seed=2)]
    outputs = renderer(jobs)
    for job, ref, out in zip(jobs, sd15_renderer(jobs), outputs, strict=True):
        diff = np.abs(out.image.astype(int) - ref.image.astype(int)).max()
        assert diff <= LEVER_TOLERANCE, f"{change}: {job.job_id} differs from the default render by {diff}"
    assert_valid_with_exact_garment(outputs, jobs)
