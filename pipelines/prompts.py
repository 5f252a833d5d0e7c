"""Prompts from the product record, the profile's templates and a deterministic model-diversity descriptor."""

from __future__ import annotations

import hashlib
import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = (
    "full body fashion catalogue photograph of a {age} {person} model, {skin} skin, {hair} hair, {body} build, "
    "wearing a {color} {title}, {category}, plain light grey studio background, soft even lighting, sharp focus"
)
DEFAULT_NEGATIVE = (
    "deformed, bad anatomy, extra limbs, extra fingers, blurry, lowres, text, watermark, logo, cropped, "
    "worst quality, jpeg artifacts"
)
DEFAULT_DIVERSITY: tuple[dict[str, str], ...] = (
    {"age": "young adult", "skin": "light", "hair": "long straight brown", "body": "slim"},
    {"age": "thirty-something", "skin": "dark brown", "hair": "short curly black", "body": "athletic"},
    {"age": "middle-aged", "skin": "olive", "hair": "shoulder-length wavy dark", "body": "curvy"},
    {"age": "young adult", "skin": "medium brown", "hair": "braided black", "body": "petite"},
    {"age": "mature", "skin": "fair freckled", "hair": "short grey", "body": "average"},
    {"age": "twenty-something", "skin": "deep brown", "hair": "cropped natural", "body": "tall"},
)
PERSON_BY_GENDER = {
    "female": "woman",
    "women": "woman",
    "woman": "woman",
    "male": "man",
    "men": "man",
    "man": "man",
    "unisex": "person",
}
TEMPLATE_FIELDS = ("age", "person", "skin", "hair", "body", "color", "title", "category")


@dataclass(frozen=True)
class PromptPair:
    """The final prompt and negative prompt for one image, and the diversity descriptor that shaped it."""

    prompt: str
    negative_prompt: str
    diversity: dict[str, str]
    truncated: bool = False


def check_inputs(template: str, diversity: Sequence[Mapping[str, str]]) -> None:
    """Raise a ValueError that names the unknown placeholder or the empty diversity list."""
    unknown = [
        name for _, name, _, _ in string.Formatter().parse(template) if name and name not in TEMPLATE_FIELDS
    ]
    if unknown:
        raise ValueError(
            f"prompt template uses unknown placeholder(s) {unknown}; use only {{{'}, {'.join(TEMPLATE_FIELDS)}}}."
        )
    if not diversity:
        raise ValueError("diversity must list at least one model descriptor (age, skin, hair, body).")


def pick_diversity(sku: str, variant: int, diversity: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Variants of one product walk the list from a per-sku offset, so they show different models."""
    offset = int.from_bytes(hashlib.sha256(sku.encode("utf-8")).digest()[:4], "big")
    return dict(diversity[(offset + variant) % len(diversity)])


def build_prompts(
    attributes: Mapping[str, str],
    sku: str,
    variant: int,
    row_prompt: str = "",
    row_negative: str = "",
    template: str = DEFAULT_TEMPLATE,
    negative: str = DEFAULT_NEGATIVE,
    diversity: Sequence[Mapping[str, str]] = DEFAULT_DIVERSITY,
) -> PromptPair:
    """Fill the template from the product attributes and a diversity descriptor; append the CSV row's text."""
    check_inputs(template, diversity)
    # 1. The model descriptor for this variant.
    descriptor = pick_diversity(sku, variant, diversity)
    # 2. Product words; missing ones become neutral defaults so the sentence still reads.
    gender = str(attributes.get("gender", "")).strip().lower()
    values = {
        "age": descriptor.get("age", "adult"),
        "skin": descriptor.get("skin", "natural"),
        "hair": descriptor.get("hair", "neat"),
        "body": descriptor.get("body", "average"),
        "person": PERSON_BY_GENDER.get(gender, "person"),
        "color": str(attributes.get("color", "")).strip(),
        "title": str(attributes.get("title", "")).strip()
        or str(attributes.get("category", "garment")).strip(),
        "category": str(attributes.get("category", "")).strip(),
    }
    prompt = _tidy(template.format(**values))
    # 3. The CSV row's own prompt / negative prompt extend, never replace, the profile's.
    if row_prompt.strip():
        prompt = f"{prompt}, {row_prompt.strip()}"
    negative_prompt = ", ".join(part for part in (negative.strip(), row_negative.strip()) if part)
    return PromptPair(prompt=prompt, negative_prompt=negative_prompt, diversity=descriptor)


def fit_prompt(prompt: str, tokenizer: Any, what: str = "prompt") -> tuple[str, bool]:
    """Cut a prompt to the tokenizer's window at a word boundary (with a warning) instead of failing."""
    # 1. CLIP sees at most model_max_length tokens including start and end.
    window = int(getattr(tokenizer, "model_max_length", 77))
    limit = (window if window < 100_000 else 77) - 2  # an unset window reads as ~1e30: CLIP's is 77
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    if len(ids) <= limit:
        return prompt, False
    # 2. Drop whole words from the end until it fits; the product words come first in the template.
    words = prompt.split()
    low, high = 0, len(words)  # binary search on the word count: very long CSV prompts stay cheap
    while low < high:
        middle = (low + high + 1) // 2
        if len(tokenizer(" ".join(words[:middle]), add_special_tokens=False).input_ids) <= limit:
            low = middle
        else:
            high = middle - 1
    fitted = " ".join(words[:low]).rstrip(" ,")
    logger.warning(
        "%s is %d tokens, over the model's %d; it was cut to: %r. Shorten the CSV prompt or the template.",
        what,
        len(ids),
        limit,
        fitted,
    )
    return fitted, True


def _tidy(text: str) -> str:
    """Collapse the gaps empty fields leave ("a  shirt", ", ,")."""
    parts = [" ".join(part.split()) for part in text.split(",")]
    return ", ".join(part for part in parts if part)
