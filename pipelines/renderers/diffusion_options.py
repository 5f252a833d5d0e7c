"""The diffusion renderer's options, checked without torch, diffusers, the filesystem or the network.

A run validates its profile with this module before any weights load: a typo fails in milliseconds, not
after the GPU has warmed up. diffusion.py maps these names onto torch dtypes and diffusers schedulers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines import model_sources
from pipelines.option_keys import unknown_keys
from pipelines.prompts import DEFAULT_DIVERSITY, DEFAULT_NEGATIVE, DEFAULT_TEMPLATE
from pipelines.prompts import check_inputs as check_prompts

DTYPE_NAMES = ("float16", "bfloat16", "float32")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SCHEDULER_NAMES = ("dpmpp_2m_karras", "dpmpp_2m", "unipc", "euler", "euler_a", "ddim")
ATTENTION_MODES = ("sdpa", "eager")
GARMENT_CONTROLS = ("canny", "silhouette")
# Every top-level key the renderer or pipelines/model_sources.py reads; anything else is a typo.
OPTION_NAMES = (
    "family",
    "models",
    "dtype",
    "attention",
    "channels_last",
    "fuse_qkv",
    "compile",
    "fast_vae_encode",
    "scheduler",
    "steps",
    "guidance_scale",
    "controlnet_scales",
    "garment_control",
    "resolution",
    "max_attempts",
    "prompts",
    "diversity",
    "profile",  # the profile's path, only quoted in "model not available" messages
)
MODEL_ROLES = ("inpaint", "controlnet_pose", "controlnet_garment")
REQUIRED_ROLES = ("inpaint", "controlnet_pose")
MODEL_KEYS = ("id", "revision", "subfolder", "variant")
SCHEDULER_KEYS = ("name",)
SCALE_KEYS = ("pose", "garment")
PROMPT_KEYS = ("template", "negative")
RESOLUTION_KEYS = ("width", "height")
DIVERSITY_KEYS = ("age", "skin", "hair", "body")  # the descriptor fields build_prompts reads
BOOLEAN_OPTIONS = ("channels_last", "fuse_qkv", "fast_vae_encode")


@dataclass(frozen=True)
class DiffusionSettings:
    """The renderer options a profile sets, validated, with their defaults."""

    family: str = "sd15"
    dtype: str = "float16"
    attention: str = "sdpa"
    channels_last: bool = True
    fuse_qkv: bool = False
    compile: str = "off"
    fast_vae_encode: bool = True
    scheduler: str = "dpmpp_2m_karras"
    steps: int = 25
    guidance_scale: float = 6.0
    pose_scale: float = 1.0
    garment_scale: float = 0.5
    garment_control: str = "canny"
    resolution: tuple[int, int] | None = None  # (width, height); None = the job's canvas
    max_attempts: int = 3
    template: str = DEFAULT_TEMPLATE
    negative_prompt: str = DEFAULT_NEGATIVE
    diversity: tuple[dict[str, str], ...] = DEFAULT_DIVERSITY
    extra: dict[str, Any] = field(default_factory=dict)


def _check_keys(where: str, given: Mapping[str, Any], known: Sequence[str], example: str) -> None:
    """Refuse keys outside `known`, suggesting the closest known one for a typo."""
    unknown, hint = unknown_keys(given, known)
    if not unknown:
        return
    raise ValueError(f"unknown key(s) {unknown} in {where}{hint}; it takes {list(known)}, e.g. {example}.")


def _mapping(options: Mapping[str, Any], key: str, example: str) -> Mapping[str, Any]:
    """An optional nested mapping option; null or absent reads as empty."""
    value = options.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping, e.g. {key}: {example}; got {value!r}.")
    return value


def _whole(value: Any, name: str, example: int) -> int:
    """An integer option; a bool or a fractional number is refused rather than silently rounded."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{name} must be a whole number such as {example}; got {value!r}.")
    return int(value)


def _number(value: Any, name: str, example: float) -> float:
    """A non-negative real option (guidance and conditioning scales)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 such as {example}; got {value!r}.")
    return float(value)


def _check_models(options: Mapping[str, Any]) -> None:
    """models: model_sources' own structure check, then roles, keys and types the renderer relies on."""
    model_sources.check_inputs(options)
    models = options["models"]
    example = "{id: <hub repo id or local folder>, revision: main, variant: fp16}"
    _check_keys("models", models, MODEL_ROLES, "models: {inpaint: {...}, controlnet_pose: {...}}")
    for role in REQUIRED_ROLES:
        if models[role] is None:
            raise ValueError(
                f"models.{role} cannot be null: the renderer needs it (only controlnet_garment may be null)."
            )
    for role, entry in models.items():
        if entry is None:
            continue
        _check_keys(f"models.{role}", entry, MODEL_KEYS, f"models.{role}: {example}")
        if not isinstance(entry["id"], str):
            raise ValueError(
                f"models.{role}.id must be a string (a Hugging Face repo id or a local folder); "
                f"got {entry['id']!r}."
            )
        for key in ("revision", "subfolder", "variant"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"models.{role}.{key} must be a string (e.g. revision: main, variant: fp16); got {value!r}."
                )


def _diversity(options: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    """The model-diversity descriptors: a list of {age, skin, hair, body} mappings (empty = the defaults)."""
    given = options.get("diversity") or DEFAULT_DIVERSITY
    example = "{age: young adult, skin: light, hair: long straight brown, body: slim}"
    if isinstance(given, str | bytes | Mapping) or not isinstance(given, Sequence):
        raise ValueError(f"diversity must be a list of descriptors such as {example}; got {given!r}.")
    for index, entry in enumerate(given):
        if not isinstance(entry, Mapping):
            raise ValueError(f"diversity[{index}] must be a mapping such as {example}; got {entry!r}.")
        _check_keys(f"diversity[{index}]", entry, DIVERSITY_KEYS, example)
        for key, value in entry.items():
            if not isinstance(value, str):
                raise ValueError(f"diversity[{index}].{key} must be a string; got {value!r}.")
    return tuple(dict(d) for d in given)


def check_inputs(options: Mapping[str, Any], device: str) -> DiffusionSettings:
    """Validate renderer options; every error names the option and what to write instead."""
    if not isinstance(options, Mapping):
        raise ValueError(f"renderer options must be a mapping (see configs/sd15.yaml); got {options!r}.")
    unknown, hint = unknown_keys(options, OPTION_NAMES)
    if unknown:
        raise ValueError(
            f"unknown diffusion renderer option(s) {unknown}{hint}; the diffusion renderer takes "
            f"{list(OPTION_NAMES)} (see configs/sd15.yaml)."
        )
    if options.get("dtype", "float16") not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {list(DTYPE_NAMES)}; got {options.get('dtype')!r}.")
    if str(options.get("compile", "off")) not in COMPILE_MODES:
        # YAML reads a bare `off` as false: the profile must quote it.
        quote = (
            ' (quote it: compile: "off"; a bare off is read as false)' if options["compile"] is False else ""
        )
        raise ValueError(
            f"compile must be one of {list(COMPILE_MODES)}; got {options.get('compile')!r}{quote}."
        )
    if options.get("attention", "sdpa") not in ATTENTION_MODES:
        raise ValueError(
            f"attention must be 'sdpa' (fused kernels) or 'eager'; got {options.get('attention')!r}."
        )
    if options.get("fuse_qkv") and options.get("attention", "sdpa") == "eager":
        # Fusing installs diffusers' fused SDPA processors, which would silently undo `attention: eager` while
        # every image's metadata still said eager.
        raise ValueError(
            "fuse_qkv: true runs fused SDPA attention, so it cannot be combined with attention: eager; "
            "set attention: sdpa, or fuse_qkv: false to keep eager attention."
        )
    scheduler = options.get("scheduler", {}) or {}
    if isinstance(scheduler, Mapping):
        _check_keys("scheduler", scheduler, SCHEDULER_KEYS, "scheduler: {name: dpmpp_2m_karras}")
    scheduler_name = (
        scheduler.get("name", "dpmpp_2m_karras") if isinstance(scheduler, Mapping) else str(scheduler)
    )
    if scheduler_name not in SCHEDULER_NAMES:
        raise ValueError(f"scheduler.name must be one of {list(SCHEDULER_NAMES)}; got {scheduler_name!r}.")
    steps = _whole(options.get("steps", 25), "steps", 25)
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    max_attempts = _whole(options.get("max_attempts", 3), "max_attempts", 3)
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1; got {options.get('max_attempts')}.")
    if options.get("garment_control", "canny") not in GARMENT_CONTROLS:
        raise ValueError(
            f"garment_control must be 'canny' or 'silhouette'; got {options.get('garment_control')!r}."
        )
    resolution = options.get("resolution")
    if resolution is not None:
        if not isinstance(resolution, Mapping) or set(resolution) != set(RESOLUTION_KEYS):
            raise ValueError(
                f"resolution must be null (the canvas) or {{width, height}}, e.g. resolution: "
                f"{{width: 512, height: 768}}; got {resolution!r}."
            )
        width = _whole(resolution["width"], "resolution.width", 512)
        height = _whole(resolution["height"], "resolution.height", 768)
        if width % 8 or height % 8 or width <= 0 or height <= 0:
            raise ValueError(f"resolution must be positive multiples of 8; got {width}x{height}.")
        resolution = (width, height)
    if options.get("dtype", "float16") == "float16" and not str(device).startswith("cuda"):
        raise ValueError(
            f"dtype float16 needs a CUDA device; on {device!r} set dtype: float32 (or bfloat16)."
        )
    for key in BOOLEAN_OPTIONS:
        if key in options and not isinstance(options[key], bool):
            raise ValueError(f"{key} must be true or false; got {options[key]!r}.")
    guidance_scale = _number(options.get("guidance_scale", 6.0), "guidance_scale", 6.0)
    scales = _mapping(options, "controlnet_scales", "{pose: 1.0, garment: 0.5}")
    _check_keys("controlnet_scales", scales, SCALE_KEYS, "controlnet_scales: {pose: 1.0, garment: 0.5}")
    pose_scale = _number(scales.get("pose", 1.0), "controlnet_scales.pose", 1.0)
    garment_scale = _number(scales.get("garment", 0.5), "controlnet_scales.garment", 0.5)
    prompts = _mapping(options, "prompts", "{template: ..., negative: ...}")
    _check_keys("prompts", prompts, PROMPT_KEYS, "prompts: {template: ..., negative: ...}")
    for key in PROMPT_KEYS:
        if key in prompts and not isinstance(prompts[key], str):
            raise ValueError(f"prompts.{key} must be a string; got {prompts[key]!r}.")
    template = str(prompts.get("template", DEFAULT_TEMPLATE))
    diversity = _diversity(options)
    # The same placeholder check build_prompts runs per image, so a bad template fails before any load.
    check_prompts(template, diversity)
    if not isinstance(options.get("family", "sd15"), str):
        raise ValueError(f"family must be 'sd15' or 'sdxl'; got {options['family']!r}.")
    if "profile" in options and not isinstance(options["profile"], str):
        raise ValueError(f"profile must be the profile's path as a string; got {options['profile']!r}.")
    _check_models(options)
    return DiffusionSettings(
        family=str(options.get("family", "sd15")),
        dtype=str(options.get("dtype", "float16")),
        attention=str(options.get("attention", "sdpa")),
        channels_last=bool(options.get("channels_last", True)),
        fuse_qkv=bool(options.get("fuse_qkv", False)),
        compile=str(options.get("compile", "off")),
        fast_vae_encode=bool(options.get("fast_vae_encode", True)),
        scheduler=scheduler_name,
        steps=steps,
        guidance_scale=guidance_scale,
        pose_scale=pose_scale,
        garment_scale=garment_scale,
        garment_control=str(options.get("garment_control", "canny")),
        resolution=resolution,
        max_attempts=max_attempts,
        template=template,
        negative_prompt=str(prompts.get("negative", DEFAULT_NEGATIVE)),
        diversity=diversity,
    )


def describe(
    settings: DiffusionSettings, models: Mapping[str, model_sources.ResolvedModel]
) -> dict[str, Any]:
    """Everything that shapes the pixels: models + resolved commits, dtype, scheduler, steps, guidance, scales.

    The renderer records this in every image; the run's config fingerprint hashes it, so new weights behind
    `revision: main` (another commit) re-render what they would change.
    """
    s = settings
    return {
        "renderer": "diffusion",
        "family": s.family,
        "models": {
            role: {
                "id": m.ref.id,
                "revision": m.ref.revision,
                "commit": m.commit,
                "subfolder": m.ref.subfolder,
                "variant": m.ref.variant,
            }
            for role, m in models.items()
        },
        "dtype": s.dtype,
        "attention": s.attention,
        "scheduler": s.scheduler,
        "steps": s.steps,
        "guidance_scale": s.guidance_scale,
        "controlnet_scales": {
            "pose": s.pose_scale,
            "garment": s.garment_scale if "controlnet_garment" in models else None,
        },
        "garment_control": s.garment_control,
        "resolution": list(s.resolution) if s.resolution else None,
        "fast_vae_encode": s.fast_vae_encode,
        "prompt_template": s.template,
        "negative_prompt": s.negative_prompt,
    }


def identity(options: Mapping[str, Any], device: str) -> dict[str, Any]:
    """What `DiffusionRenderer(options, device).describe()` will say, found offline without loading weights.

    Resolving the models reads the local folders or the Hugging Face cache only; a missing model is the clear
    ModelNotAvailableError here, before any work.
    """
    settings = check_inputs(options, device)
    models = model_sources.resolve_models(options, profile_hint=str(options.get("profile", "")))
    return describe(settings, models)
