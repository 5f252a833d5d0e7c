"""Where model weights come from: local folders or the Hugging Face cache, checked offline before any load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The files each kind of model needs; the weights may come as a single file, shards, or a dtype variant.
PIPELINE_COMPONENTS = {
    "sd15": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "sdxl": ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"),
}
REQUIRED_FILES = {
    "unet": "unet/config.json",
    "vae": "vae/config.json",
    "text_encoder": "text_encoder/config.json",
    "text_encoder_2": "text_encoder_2/config.json",
    "tokenizer": "tokenizer/tokenizer_config.json",
    "tokenizer_2": "tokenizer_2/tokenizer_config.json",
    "scheduler": "scheduler/scheduler_config.json",
}


class ModelNotAvailableError(RuntimeError):
    """A model is neither a local folder nor in the Hugging Face cache; the message says how to fetch it."""


@dataclass(frozen=True)
class ModelRef:
    """One model reference from a profile: a hub id or a local directory, pinned to a revision."""

    role: str  # "inpaint", "controlnet_pose", "controlnet_garment"
    id: str
    revision: str = "main"
    subfolder: str = ""
    variant: str = ""  # e.g. "fp16": the hub's half-precision weight files

    @property
    def is_local(self) -> bool:
        """A path that exists on disk is used as it is (no hub, no cache)."""
        return Path(self.id).expanduser().is_dir()


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are on disk, and the commit they came from ("local" for a plain folder)."""

    ref: ModelRef
    path: Path
    commit: str


def check_inputs(options: Mapping[str, Any]) -> None:
    """Raise a ValueError saying which model entry is missing or malformed."""
    models = options.get("models")
    if not isinstance(models, Mapping) or "inpaint" not in models or "controlnet_pose" not in models:
        raise ValueError(
            "renderer options need models: {inpaint: {id, revision}, controlnet_pose: {id, revision}} "
            "(controlnet_garment is optional); see configs/sd15.yaml."
        )
    for role, entry in models.items():
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or not str(entry.get("id", "")).strip():
            raise ValueError(
                f"models.{role} needs an id (a Hugging Face repo id or a local folder); got {entry!r}."
            )
    if options.get("family", "sd15") not in PIPELINE_COMPONENTS:
        raise ValueError(
            f"family must be one of {sorted(PIPELINE_COMPONENTS)}; got {options.get('family')!r}."
        )


def model_refs(options: Mapping[str, Any]) -> list[ModelRef]:
    """The profile's model references in load order; a null entry (no garment ControlNet) is skipped."""
    check_inputs(options)
    refs = []
    for role, entry in options["models"].items():
        if entry is None:
            continue
        refs.append(
            ModelRef(
                role=str(role),
                id=str(entry["id"]).strip(),
                revision=str(entry.get("revision") or "main"),
                subfolder=str(entry.get("subfolder") or ""),
                variant=str(entry.get("variant") or ""),
            )
        )
    return refs


def allow_patterns(ref: ModelRef, family: str) -> list[str]:
    """The files to fetch for one model: configs, tokenizer files and one set of safetensors weights."""
    infix = f".{ref.variant}" if ref.variant else ""
    prefix = f"{ref.subfolder}/" if ref.subfolder else ""
    folders = [f"{prefix}{c}/" for c in PIPELINE_COMPONENTS[family]] if ref.role == "inpaint" else [prefix]
    patterns = [f"{prefix}model_index.json"] if ref.role == "inpaint" else []
    for folder in folders:
        patterns += [f"{folder}*.json", f"{folder}*.txt", f"{folder}*model{infix}.safetensors"]
        patterns += [f"{folder}*model{infix}-*.safetensors"]  # shards
    return patterns


def required_files(ref: ModelRef, family: str) -> list[str]:
    """The files whose presence says a model folder is complete enough to load."""
    prefix = f"{ref.subfolder}/" if ref.subfolder else ""
    if ref.role == "inpaint":
        return [prefix + REQUIRED_FILES[c] for c in PIPELINE_COMPONENTS[family]]
    return [prefix + "config.json"]


def _missing(path: Path, ref: ModelRef, family: str) -> list[str]:
    """Required files absent under path (weights are checked by the loader, which names the file)."""
    return [name for name in required_files(ref, family) if not (path / name).is_file()]


def resolve_model(
    ref: ModelRef, family: str = "sd15", cache_dir: str | Path | None = None, profile_hint: str = ""
) -> ResolvedModel:
    """Find a model on this machine without network access, or raise ModelNotAvailableError saying how to fetch it."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    hint = profile_hint or f"configs/{family}.yaml"
    # 1. A local folder: use it if its files are there.
    if ref.is_local:
        path = Path(ref.id).expanduser()
        missing = _missing(path, ref, family)
        if missing:
            raise ModelNotAvailableError(
                f"Model folder {path} for {ref.role} is incomplete: missing {', '.join(missing)}. Point models."
                f"{ref.role}.id at a complete diffusers folder (save_pretrained output) or at a hub id."
            )
        return ResolvedModel(ref=ref, path=path, commit="local")
    # 2. A hub id: only the local cache is consulted here, never the network.
    cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
    try:
        path = Path(
            snapshot_download(
                ref.id,
                revision=ref.revision,
                cache_dir=cache,
                local_files_only=True,
                allow_patterns=allow_patterns(ref, family),
            )
        )
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError) as error:
        raise ModelNotAvailableError(
            f"Model {ref.id!r} (revision {ref.revision!r}, used as {ref.role}) is not available on this machine: "
            f"it is not a local folder and not in the Hugging Face cache at {cache}. Pre-fetch it on a machine "
            f"with network access with `onmodel models download {hint}` (set HF_HUB_CACHE to a shared folder "
            f"for air-gapped GPU workers), or set models.{ref.role}.id to a local folder. ({error.__class__.__name__})"
        ) from error
    missing = _missing(path, ref, family)
    if missing:
        raise ModelNotAvailableError(
            f"Model {ref.id!r} (revision {ref.revision!r}) is only partly in the cache at {cache}: missing "
            f"{', '.join(missing)}. Run `onmodel models download {hint}` again to complete it."
        )
    return ResolvedModel(ref=ref, path=path, commit=path.name)


def resolve_models(
    options: Mapping[str, Any], cache_dir: str | Path | None = None, profile_hint: str = ""
) -> dict[str, ResolvedModel]:
    """Resolve every model of a renderer's options offline, before anything is built."""
    family = str(options.get("family", "sd15"))
    return {ref.role: resolve_model(ref, family, cache_dir, profile_hint) for ref in model_refs(options)}


def download_models(
    options: Mapping[str, Any],
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
    profile_hint: str = "",
) -> dict[str, str]:
    """Fill the Hugging Face cache with every model the options name; return role -> resolved commit sha."""
    from huggingface_hub import constants, snapshot_download

    family = str(options.get("family", "sd15"))
    hint = profile_hint or f"configs/{family}.yaml"
    shas: dict[str, str] = {}
    for ref in model_refs(options):
        # 1. A local folder needs no download: verify it and move on.
        if ref.is_local:
            resolve_model(ref, family, cache_dir, profile_hint)
            shas[ref.role] = "local"
            continue
        # 2. Fetch only the files the renderer loads, at the pinned revision.
        try:
            path = Path(
                snapshot_download(
                    ref.id,
                    revision=ref.revision,
                    cache_dir=cache_dir,
                    allow_patterns=allow_patterns(ref, family),
                    endpoint=endpoint,
                )
            )
        except (
            Exception
        ) as error:  # the hub client raises many kinds (network, auth, gated, missing revision)
            cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
            raise ModelNotAvailableError(
                f"Could not download {ref.id!r} (revision {ref.revision!r}, {ref.role}) into {cache}: "
                f"{error.__class__.__name__}: {str(error)[:300]}. Check network access to the Hugging Face Hub "
                f"(or HF_ENDPOINT for a mirror), accept the model's licence on its hub page and log in with "
                f"`hf auth login` if it is gated, then run `onmodel models download {hint}` again."
            ) from error
        shas[ref.role] = path.name
    return shas
