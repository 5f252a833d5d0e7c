"""ControlNet-guided SD 1.5 / SDXL inpainting around the untouched garment: a callable class, one per device."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from diffusers import (
    ControlNetModel,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    UniPCMultistepScheduler,
)
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from PIL import Image

from pipelines.compositing import composite_garment
from pipelines.errors import DeviceLostError, DeviceOutOfMemoryError, RenderError
from pipelines.model_sources import ResolvedModel, resolve_models
from pipelines.prompts import build_prompts, fit_prompt
from pipelines.renderers.base import RenderedImage, RenderJob
from pipelines.renderers.diffusion_options import (
    DTYPE_NAMES,
    SCHEDULER_NAMES,
    DiffusionSettings,
    check_inputs,
    describe,
)

logger = logging.getLogger(__name__)
# torch.AcceleratorError (CUDA / XPU faults such as a lost device) exists from torch 2.8 on.
ACCELERATOR_ERRORS: tuple[type[BaseException], ...] = tuple(
    error for error in (getattr(torch, "AcceleratorError", None),) if isinstance(error, type)
)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
SCHEDULERS: dict[str, tuple[Any, dict[str, Any]]] = {  # diffusers scheduler classes (read as Any)
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "dpmpp_2m": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {}),
}
# The torch-free check accepts names this module must be able to load: a drift fails at import, not mid-run.
if set(SCHEDULERS) != set(SCHEDULER_NAMES) or set(DTYPES) != set(DTYPE_NAMES):
    raise RuntimeError(
        f"diffusion.py and diffusion_options.py disagree: schedulers {sorted(SCHEDULERS)} vs "
        f"{sorted(SCHEDULER_NAMES)}, dtypes {sorted(DTYPES)} vs {sorted(DTYPE_NAMES)}."
    )
BLACK_MEAN = 4.0 / 255.0  # "near black": mean and spread both tiny (the classic fp16 overflow output)
BLACK_STD = 2.0 / 255.0


class _FastMaskEncodeMixin:
    """Encode the masked image once per distinct image, batched, with the latent mean (no sampling).

    Stock diffusers encodes image by image when given a generator list, draws a latent sample from each
    generator, and for 4-channel UNets also encodes a masked image it never uses; variants of one
    product x pose share their masked image, so it is encoded once.
    """

    onmodel_fast_encode: bool = True

    def _encode_vae_image(self, image: torch.Tensor, generator: Any) -> torch.Tensor:
        if not self.onmodel_fast_encode:
            return super()._encode_vae_image(image, generator)  # type: ignore[misc]
        vae = self.vae  # type: ignore[attr-defined]
        distinct: list[int] = []
        index: list[int] = []
        for i in range(image.shape[0]):
            match = next((k for k, j in enumerate(distinct) if torch.equal(image[i], image[j])), None)
            if match is None:
                distinct.append(i)
                match = len(distinct) - 1
            index.append(match)
        latents = vae.encode(image[distinct].to(vae.dtype)).latent_dist.mode()
        return (vae.config.scaling_factor * latents)[index].to(image.dtype)

    def prepare_mask_latents(
        self,
        mask,
        masked_image,
        batch_size,
        height,
        width,
        dtype,
        device,
        generator,
        do_classifier_free_guidance,
    ):
        if self.onmodel_fast_encode and self.unet.config.in_channels == 4:  # type: ignore[attr-defined]
            # A 4-channel UNet never reads the masked-image latents: skip the second VAE encode. SD 1.5 takes
            # a 4-channel input as ready latents; SDXL has no such branch (it would VAE-encode it) but skips None.
            if isinstance(self, StableDiffusionXLControlNetInpaintPipeline):
                masked_image = None
            else:
                factor = self.vae_scale_factor  # type: ignore[attr-defined]
                masked_image = torch.zeros(
                    masked_image.shape[0], 4, height // factor, width // factor, device=device
                )
        return super().prepare_mask_latents(  # type: ignore[misc]
            mask,
            masked_image,
            batch_size,
            height,
            width,
            dtype,
            device,
            generator,
            do_classifier_free_guidance,
        )


class OnmodelSD15Pipeline(_FastMaskEncodeMixin, StableDiffusionControlNetInpaintPipeline):
    """StableDiffusionControlNetInpaintPipeline with the batched, deduplicated masked-image encode."""


class OnmodelSDXLPipeline(_FastMaskEncodeMixin, StableDiffusionXLControlNetInpaintPipeline):
    """StableDiffusionXLControlNetInpaintPipeline with the batched, deduplicated masked-image encode."""


def garment_control_map(placed_rgba: np.ndarray, kind: str = "canny") -> np.ndarray:
    """White-on-black edges of the placed garment (its print and silhouette) for the second ControlNet."""
    alpha = placed_rgba[..., 3] >= 128
    outline = cv2.morphologyEx(alpha.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    edges = outline
    if kind == "canny":
        gray = cv2.cvtColor(np.ascontiguousarray(placed_rgba[..., :3]), cv2.COLOR_RGB2GRAY)
        edges = edges | ((cv2.Canny(gray, 100, 200) > 0) & alpha)
    return np.repeat(np.where(edges, 255, 0).astype(np.uint8)[..., None], 3, axis=2)


def image_problem(image: np.ndarray) -> str | None:
    """'nan' for non-finite pixels, 'black' for a near-black flat image, else None (image in 0..1 float)."""
    if not np.isfinite(image).all():
        return "nan"
    if float(image.mean()) < BLACK_MEAN and float(image.std()) < BLACK_STD:
        return "black"
    return None


class DiffusionRenderer:
    """Loads the inpaint pipeline and ControlNets once on a device; renders a batch of RenderJobs per call."""

    name = "diffusion"

    def __init__(
        self,
        options: Mapping[str, Any],
        device: str = "cuda",
        quality_check: Callable[[np.ndarray], str | None] | None = None,
    ) -> None:
        self.settings: DiffusionSettings = check_inputs(options, device)
        self.options = copy.deepcopy(dict(options))
        self.device = torch.device(device)
        self.dtype = DTYPES[self.settings.dtype]
        self.quality_check = quality_check
        # 1. Find every model offline first: a missing one fails here, naming the model and the fetch command.
        self.models: dict[str, ResolvedModel] = resolve_models(
            options, profile_hint=str(options.get("profile", ""))
        )
        # 2. Build the pipeline from the resolved folders (never the network).
        self.pipe = self._load_pipeline()
        # 3. Performance levers, each switchable from the profile.
        self._apply_levers()
        self.pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], device: str) -> DiffusionRenderer:
        """Registry entry point: the profile's renderer options and a device string ("cuda:0", "cpu")."""
        return cls(options, device)

    def _load_pipeline(self) -> StableDiffusionControlNetInpaintPipeline:
        """Load ControlNet(s) and the inpaint pipeline in the configured dtype on the device."""
        controlnets = []
        for role in ("controlnet_pose", "controlnet_garment"):
            if role in self.models:
                model = self.models[role]
                controlnets.append(
                    ControlNetModel.from_pretrained(
                        model.path,
                        subfolder=model.ref.subfolder or None,
                        dtype=self.dtype,
                        variant=model.ref.variant or None,
                    )
                )
        inpaint = self.models["inpaint"]
        path = inpaint.path / inpaint.ref.subfolder if inpaint.ref.subfolder else inpaint.path
        pipeline_class = OnmodelSD15Pipeline if self.settings.family == "sd15" else OnmodelSDXLPipeline
        extra: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False}
        if self.settings.family == "sdxl":
            extra = {}
        pipe = pipeline_class.from_pretrained(
            path,
            controlnet=controlnets[0] if len(controlnets) == 1 else controlnets,
            dtype=self.dtype,
            variant=inpaint.ref.variant or None,
            feature_extractor=None,
            **extra,
        )
        scheduler_class, scheduler_kwargs = SCHEDULERS[self.settings.scheduler]
        pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config, **scheduler_kwargs)
        pipe.onmodel_fast_encode = self.settings.fast_vae_encode
        return pipe.to(self.device)

    def _apply_levers(self) -> None:
        """Attention kernel, memory format, fused QKV and torch.compile, as the profile asks."""
        nets = [self.pipe.unet, self.pipe.controlnet, self.pipe.vae]
        processor = AttnProcessor2_0 if self.settings.attention == "sdpa" else AttnProcessor
        for net in (self.pipe.unet, self.pipe.vae):
            net.set_attn_processor(processor())
        for controlnet in getattr(self.pipe.controlnet, "nets", [self.pipe.controlnet]):
            controlnet.set_attn_processor(processor())
        if self.settings.fuse_qkv:
            for net in [self.pipe.unet, *getattr(self.pipe.controlnet, "nets", [self.pipe.controlnet])]:
                net.fuse_qkv_projections()
        if self.settings.channels_last:
            for net in nets:
                net.to(memory_format=torch.channels_last)
        if self.settings.compile != "off":
            mode = None if self.settings.compile == "default" else self.settings.compile
            self.pipe.unet = torch.compile(self.pipe.unet, mode=mode, fullgraph=False)
            self.pipe.controlnet = torch.compile(self.pipe.controlnet, mode=mode, fullgraph=False)
            self.pipe.vae.decode = torch.compile(self.pipe.vae.decode, mode=mode, fullgraph=False)

    def describe(self) -> dict[str, Any]:
        """Everything that shapes the pixels: models + revisions, dtype, scheduler, steps, guidance, scales."""
        return describe(self.settings, self.models)

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        """Render a batch; each job gets its own generator, so batching never changes an image beyond rounding.

        Torch's device faults leave here as domain errors (the one place that knows torch's types): out of memory
        at batch 1 as DeviceOutOfMemoryError, a CUDA / accelerator error as DeviceLostError (both retried).
        """
        try:
            return self._render_jobs(jobs)
        except torch.OutOfMemoryError as error:
            raise DeviceOutOfMemoryError(
                f"out of memory on {self.device} even at batch 1: {error}"
            ) from error
        except ACCELERATOR_ERRORS as error:
            raise DeviceLostError(f"{self.device} failed mid-batch: {error}") from error

    def _render_jobs(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        """The batch render behind __call__."""
        if not jobs:
            return []
        # 1. Prompts per job (deterministic model diversity per variant), fitted to the text encoder's window.
        prepared = [self._prepare(job) for job in jobs]
        # 2. Render the batch; CUDA out-of-memory halves it until it fits.
        images = self._render_split([p["job"] for p in prepared], [p["seed"] for p in prepared], prepared)
        # 3. A black / NaN / failed image re-renders alone with the next seed, a bounded number of times.
        results = []
        for item, image in zip(prepared, images, strict=True):
            attempts, seed, problems = 1, item["seed"], []
            problem = self._problem(image)
            while problem is not None and attempts < self.settings.max_attempts:
                problems.append(f"{problem} at seed {seed}")
                seed, attempts = seed + 1, attempts + 1
                image = self._render_split([item["job"]], [seed], [item])[0]
                problem = self._problem(image)
            flags = [f"re-rendered: {p}" for p in problems]
            if problem is not None:
                flags.append(f"failed quality check after {attempts} attempts: {problem} at seed {seed}")
            results.append(self._finish(item, image, seed, attempts, flags))
        return results

    def _problem(self, image: np.ndarray) -> str | None:
        """Built-in black/NaN check, then the caller's quality check if any."""
        problem = image_problem(image)
        if problem is None and self.quality_check is not None:
            problem = self.quality_check(image)
        return problem

    def _prepare(self, job: RenderJob) -> dict[str, Any]:
        """Prompts, control images and the init image for one job, at render resolution."""
        s = self.settings
        pair = build_prompts(
            job.attributes,
            job.sku,
            job.variant,
            job.prompt,
            job.negative_prompt,
            s.template,
            s.negative_prompt,
            s.diversity,
        )
        prompt, cut = fit_prompt(pair.prompt, self.pipe.tokenizer, f"prompt of {job.job_id}")
        negative, cut_negative = fit_prompt(
            pair.negative_prompt, self.pipe.tokenizer, f"negative prompt of {job.job_id}"
        )
        width, height = s.resolution or job.size
        if width % 8 or height % 8:
            raise RenderError(
                f"canvas {job.size[0]}x{job.size[1]} of {job.job_id} is not a multiple of 8; set resolution."
            )
        # Init image: the garment over neutral grey (only the garment survives the mask, so grey is never seen).
        rgb = job.placed_rgba[..., :3].astype(np.float32)
        alpha = job.placed_rgba[..., 3:].astype(np.float32) / 255.0
        init = np.round(rgb * alpha + 127.0 * (1.0 - alpha)).astype(np.uint8)
        controls = [Image.fromarray(job.control_image).resize((width, height), Image.Resampling.BILINEAR)]
        if "controlnet_garment" in self.models:
            garment = garment_control_map(job.placed_rgba, s.garment_control)
            controls.append(Image.fromarray(garment).resize((width, height), Image.Resampling.NEAREST))
        flags = [
            f"{what} truncated to the text encoder's window"
            for what, c in (("prompt", cut), ("negative prompt", cut_negative))
            if c
        ]
        return {
            "job": job,
            "seed": int(job.seed),
            "prompt": prompt,
            "negative_prompt": negative,
            "diversity": pair.diversity,
            "size": (width, height),
            "init": Image.fromarray(init).resize((width, height), Image.Resampling.BICUBIC),
            "mask": Image.fromarray(job.inpaint_mask).resize((width, height), Image.Resampling.BILINEAR),
            "controls": controls,
            "flags": flags,
        }

    def _render_split(
        self, jobs: list[RenderJob], seeds: list[int], prepared: list[dict[str, Any]]
    ) -> list[np.ndarray]:
        """Render, halving the batch on CUDA out-of-memory down to one image, then re-raising."""
        try:
            return self._render_batch(seeds, prepared)
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(jobs) == 1:
                raise
            half = len(jobs) // 2
            logger.warning(
                "CUDA out of memory at batch %d; retrying as %d + %d.", len(jobs), half, len(jobs) - half
            )
            return self._render_split(jobs[:half], seeds[:half], prepared[:half]) + self._render_split(
                jobs[half:], seeds[half:], prepared[half:]
            )

    @torch.inference_mode()
    def _render_batch(self, seeds: list[int], prepared: list[dict[str, Any]]) -> list[np.ndarray]:
        """One pipeline call for same-size jobs; returns float 0..1 (H, W, 3) images at render resolution."""
        sizes = {p["size"] for p in prepared}
        if len(sizes) > 1:  # mixed canvases: render each size group on its own
            out: dict[int, np.ndarray] = {}
            for size in sizes:
                idx = [i for i, p in enumerate(prepared) if p["size"] == size]
                for i, image in zip(
                    idx, self._render_batch([seeds[i] for i in idx], [prepared[i] for i in idx]), strict=True
                ):
                    out[i] = image
            return [out[i] for i in range(len(prepared))]
        width, height = prepared[0]["size"]
        generators = [torch.Generator(self.device).manual_seed(seed) for seed in seeds]
        n_controls = len(prepared[0]["controls"])
        # Each ControlNet gets its batch as one (B, 3, H, W) 0..1 tensor: diffusers refuses nested image lists.
        controls = [
            torch.from_numpy(np.stack([np.asarray(p["controls"][k]) for p in prepared]))
            .permute(0, 3, 1, 2)
            .float()
            / 255.0
            for k in range(n_controls)
        ]
        scales = [self.settings.pose_scale, self.settings.garment_scale][:n_controls]
        kwargs: dict[str, Any] = {
            "prompt": [p["prompt"] for p in prepared],
            "negative_prompt": [p["negative_prompt"] for p in prepared],
            "image": [p["init"] for p in prepared],
            "mask_image": [p["mask"] for p in prepared],
            "control_image": controls[0] if n_controls == 1 else controls,
            "controlnet_conditioning_scale": scales[0] if n_controls == 1 else scales,
            "height": height,
            "width": width,
            "strength": 1.0,
            "num_inference_steps": self.settings.steps,
            "guidance_scale": self.settings.guidance_scale,
            "generator": generators,
            "output_type": "latent",
        }
        # 1. Denoise to latents (the decode is ours: the NaN check needs the raw tensor).
        output = self.pipe(**kwargs)
        latents = output.images
        # 2. Decode in one batch and move to CPU as float.
        vae = self.pipe.vae
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        images = (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        nan_rows = ~torch.isfinite(decoded.float()).flatten(1).all(dim=1).cpu().numpy()
        images[nan_rows] = np.nan  # clamp keeps NaN, but make it explicit for the check
        return list(images)

    def _finish(
        self, item: dict[str, Any], image: np.ndarray, seed: int, attempts: int, flags: list[str]
    ) -> RenderedImage:
        """Back to canvas size, garment composited back, parameters recorded."""
        job: RenderJob = item["job"]
        pixels = np.round(np.nan_to_num(image, nan=0.0) * 255.0).astype(np.uint8)
        if (pixels.shape[1], pixels.shape[0]) != job.size:
            pixels = cv2.resize(pixels, job.size, interpolation=cv2.INTER_LANCZOS4)
        composited = composite_garment(pixels, job.placed_rgba, job.keep_mask)
        s = self.settings
        params = {
            **self.describe(),
            "prompt": item["prompt"],
            "negative_prompt": item["negative_prompt"],
            "diversity": item["diversity"],
            "job_seed": item["seed"],
            "seed": seed,
            "attempts": attempts,
            "size": list(item["size"]),
            "canvas": list(job.size),
            "scheduler": s.scheduler,
            "steps": s.steps,
            "guidance_scale": s.guidance_scale,
        }
        return RenderedImage(
            job_id=job.job_id, image=composited, seed=seed, params=params, flags=[*item["flags"], *flags]
        )
