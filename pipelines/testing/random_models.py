"""Random-weight SD 1.5 / SDXL components saved as diffusers folders: CPU tests and GPU benchmarks, no hub access."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

Family = Literal["sd15", "sdxl"]
Size = Literal["tiny", "full"]

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
# A small local corpus to learn a few BPE merges from, so prompts tokenize to realistic lengths.
_CORPUS = (
    "a photo of a woman man model wearing a white black grey blue red green t-shirt shirt dress jeans trousers "
    "skirt jacket hoodie sweater coat studio lighting plain background full body fashion catalogue photograph "
    "high quality sharp detailed realistic skin hair short long curly straight blonde brown dark light medium "
    "young adult slim athletic curvy petite tall standing front pose hands on hips walking three quarter "
    "deformed blurry lowres bad anatomy extra fingers text watermark cropped worst quality"
)


def _controlnet_config(unet: dict[str, Any]) -> dict[str, Any]:
    """A ControlNet is its UNet's encoder half: the same down blocks, 4 latent channels in, a condition embedding."""
    decoder_only = ("sample_size", "in_channels", "out_channels", "up_block_types", "norm_num_groups")
    encoder = {key: value for key, value in unet.items() if key not in decoder_only}
    return {**encoder, "in_channels": 4, "conditioning_embedding_out_channels": (16, 32, 96, 256)}


# The real SD 1.5 inpainting architecture (runwayml / stable-diffusion-v1-5 inpainting configs, written out).
SD15_UNET_FULL: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 9,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_CONTROLNET_FULL = _controlnet_config(SD15_UNET_FULL)
SD15_VAE_FULL: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
# Full-width CLIP-L text encoder (hidden 768 must match cross_attention_dim); its cost is < 1% of an image.
SD15_TEXT_FULL: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}

# SDXL inpainting 0.1 / SDXL ControlNet architecture.
SDXL_UNET_FULL: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 9,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_CONTROLNET_FULL = _controlnet_config(SDXL_UNET_FULL)
SDXL_VAE_FULL: dict[str, Any] = {**SD15_VAE_FULL, "sample_size": 1024, "scaling_factor": 0.13025}
SDXL_TEXT_FULL: dict[str, Any] = {**SD15_TEXT_FULL, "hidden_act": "quick_gelu"}
SDXL_TEXT2_FULL: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}

# diffusers' own test configs (tests/pipelines/controlnet/test_controlnet_inpaint*.py): 64x64 images, VAE factor 2.
_TINY_BLOCKS: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
SD15_UNET_TINY: dict[str, Any] = {
    **_TINY_BLOCKS,
    "sample_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
}
SD15_CONTROLNET_TINY: dict[str, Any] = {
    **_TINY_BLOCKS,
    "in_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "cross_attention_dim": 32,
    "conditioning_embedding_out_channels": (16, 32),
}
SD15_VAE_TINY: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
}
SD15_TEXT_TINY: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
}
_SDXL_TINY_EXTRA: dict[str, Any] = {
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "transformer_layers_per_block": (1, 2),
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,  # 6 time ids x 8 + pooled text 32
    "cross_attention_dim": 64,  # two text encoders of hidden 32, concatenated
}
SDXL_UNET_TINY: dict[str, Any] = {
    **_TINY_BLOCKS,
    **_SDXL_TINY_EXTRA,
    "sample_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
}
SDXL_CONTROLNET_TINY: dict[str, Any] = {
    **_TINY_BLOCKS,
    **_SDXL_TINY_EXTRA,
    "in_channels": 4,
    "conditioning_embedding_out_channels": (16, 32),
}
SDXL_VAE_TINY: dict[str, Any] = SD15_VAE_TINY
SDXL_TEXT_TINY: dict[str, Any] = SD15_TEXT_TINY
SDXL_TEXT2_TINY: dict[str, Any] = {**SD15_TEXT_TINY, "projection_dim": 32}

SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-to-printable-character table (byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in chars], strict=True))


def write_clip_tokenizer_files(directory: Path, num_merges: int = 1000) -> tuple[Path, Path]:
    """Write a byte-level BPE vocab.json + merges.txt for CLIPTokenizer, learned from a small built-in corpus."""
    directory.mkdir(parents=True, exist_ok=True)
    # 1. The alphabet: every byte as a character, alone and as a word end ("</w>").
    alphabet = list(_bytes_to_unicode().values())
    vocab: list[str] = [*SPECIAL_TOKENS, *alphabet, *(c + "</w>" for c in alphabet)]
    # 2. Learn merges greedily (most frequent adjacent pair), deterministic by tie-breaking on the pair.
    words = Counter(_CORPUS.split())
    splits = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        vocab.append(best[0] + best[1])
        for word, symbols in splits.items():
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    # 3. Write the two files CLIPTokenizer reads.
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    vocab_path.write_text(
        json.dumps({token: i for i, token in enumerate(dict.fromkeys(vocab))}), encoding="utf-8"
    )
    merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab_path, merges_path


def _configs(family: Family, size: Size) -> dict[str, dict[str, Any]]:
    """The component configs for one family and size."""
    if family == "sd15":
        if size == "tiny":
            return {
                "unet": SD15_UNET_TINY,
                "controlnet": SD15_CONTROLNET_TINY,
                "vae": SD15_VAE_TINY,
                "text": SD15_TEXT_TINY,
            }
        return {
            "unet": SD15_UNET_FULL,
            "controlnet": SD15_CONTROLNET_FULL,
            "vae": SD15_VAE_FULL,
            "text": SD15_TEXT_FULL,
        }
    if size == "tiny":
        return {
            "unet": SDXL_UNET_TINY,
            "controlnet": SDXL_CONTROLNET_TINY,
            "vae": SDXL_VAE_TINY,
            "text": SDXL_TEXT_TINY,
            "text2": SDXL_TEXT2_TINY,
        }
    return {
        "unet": SDXL_UNET_FULL,
        "controlnet": SDXL_CONTROLNET_FULL,
        "vae": SDXL_VAE_FULL,
        "text": SDXL_TEXT_FULL,
        "text2": SDXL_TEXT2_FULL,
    }


def check_inputs(family: str, size: str) -> None:
    """Raise a ValueError naming the accepted values."""
    if family not in ("sd15", "sdxl"):
        raise ValueError(f"family must be 'sd15' or 'sdxl'; got {family!r}.")
    if size not in ("tiny", "full"):
        raise ValueError(
            f"size must be 'tiny' (CPU tests) or 'full' (real architecture, GPU benchmarks); got {size!r}."
        )


def save_random_components(directory: Path, family: Family, size: Size, seed: int = 0) -> dict[str, Path]:
    """Write a random-weight inpaint pipeline folder and two ControlNet folders; return their paths.

    Keys: "inpaint" (unet/vae/text_encoder(s)/tokenizer(s)/scheduler, loadable with from_pretrained),
    "controlnet" (the pose ControlNet) and "controlnet_garment" (a second one, e.g. for a lineart map).
    """
    check_inputs(family, size)
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DPMSolverMultistepScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    directory = Path(directory)
    configs = _configs(family, size)
    inpaint_dir = directory / f"{family}-{size}-inpaint"
    # 1. Tokenizer(s) from a locally generated vocabulary; the text encoders size their embedding table to it.
    write_clip_tokenizer_files(inpaint_dir / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(inpaint_dir / "tokenizer", model_max_length=77)
    tokenizer.save_pretrained(inpaint_dir / "tokenizer")
    vocab_size = len(tokenizer)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": 1,
    }
    # 2. Random weights, seeded, one component at a time (the full UNet is 0.9-2.6 B parameters).
    torch.manual_seed(seed)
    UNet2DConditionModel(**configs["unet"]).save_pretrained(inpaint_dir / "unet")
    AutoencoderKL(**configs["vae"]).save_pretrained(inpaint_dir / "vae")
    CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, **special, **configs["text"])).save_pretrained(
        inpaint_dir / "text_encoder"
    )
    if family == "sdxl":
        text2 = CLIPTextConfig(vocab_size=vocab_size, **special, **configs["text2"])
        CLIPTextModelWithProjection(text2).save_pretrained(inpaint_dir / "text_encoder_2")
        tokenizer.save_pretrained(inpaint_dir / "tokenizer_2")
    DPMSolverMultistepScheduler(**SCHEDULER_CONFIG).save_pretrained(inpaint_dir / "scheduler")
    _write_model_index(inpaint_dir, family)
    # 3. Two ControlNets (pose, garment silhouette), different seeds so they are not the same network.
    paths = {"inpaint": inpaint_dir}
    for offset, key in enumerate(("controlnet", "controlnet_garment"), start=1):
        torch.manual_seed(seed + offset)
        path = directory / f"{family}-{size}-{key.replace('_', '-')}"
        ControlNetModel(**configs["controlnet"]).save_pretrained(path)
        paths[key] = path
    return paths


def _write_model_index(directory: Path, family: Family) -> None:
    """A model_index.json so the folder loads like a hub pipeline repository."""
    index: dict[str, Any] = {
        "_class_name": "StableDiffusionInpaintPipeline"
        if family == "sd15"
        else "StableDiffusionXLInpaintPipeline",
        "_diffusers_version": "0.42.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    if family == "sdxl":
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
        index["requires_aesthetics_score"] = False
    else:
        index["safety_checker"] = [None, None]
        index["feature_extractor"] = [None, None]
        index["requires_safety_checker"] = False
    (directory / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
