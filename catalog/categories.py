"""Category words (native words, Shopify types, taxonomy paths, Google ids) to a GarmentClass."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from catalog.schema import GarmentClass

# Canonical word -> class. Canonical words are what a record's `category` holds after matching.
_UPPER_WORDS = (
    "t-shirt", "tee", "shirt", "blouse", "top", "tank top", "tank", "camisole", "cami", "sweater", "jumper",
    "pullover", "knitwear", "cardigan", "hoodie", "sweatshirt", "jacket", "coat", "blazer", "vest",
    "waistcoat", "gilet", "polo", "jersey", "tunic", "bodysuit", "parka", "anorak", "windbreaker", "bomber",
    "overshirt", "henley", "turtleneck", "fleece", "poncho", "shacket", "outerwear", "longsleeve",
)  # fmt: skip
_LOWER_WORDS = (
    "trousers", "pants", "jeans", "shorts", "skirt", "leggings", "joggers", "chinos", "culottes",
    "sweatpants", "slacks", "skort", "capris", "bottoms",
)  # fmt: skip
_FULL_WORDS = (
    "dress", "jumpsuit", "romper", "playsuit", "overalls", "dungarees", "gown", "one-piece", "onesie",
    "boilersuit", "catsuit", "kaftan", "caftan", "sundress", "pinafore", "shirtdress",
)  # fmt: skip

# Spellings that are not the canonical word (after lowercasing and hyphens to spaces).
_SYNONYMS = {
    "t shirt": "t-shirt", "tshirt": "t-shirt", "tee shirt": "t-shirt", "hoody": "hoodie",
    "sweat shirt": "sweatshirt", "trouser": "trousers", "pant": "pants", "jean": "jeans",
    "legging": "leggings", "jogger": "joggers", "chino": "chinos", "culotte": "culottes",
    "capri": "capris", "overall": "overalls", "dungaree": "dungarees", "one piece": "one-piece",
    "boiler suit": "boilersuit", "jump suit": "jumpsuit", "play suit": "playsuit", "long sleeve": "longsleeve",
    "knit": "knitwear", "knitted": "knitwear", "tanktop": "tank top",
}  # fmt: skip

# Head nouns that are clearly not a garment onmodel can place: a segment ending in one is never a garment,
# so "Dress Shoes" is not read as a dress.
_NOT_GARMENTS = frozenset(
    "shoe shoes boot boots sneaker sneakers sandal sandals heel heels belt belts bag bags hat hats cap caps "
    "scarf scarves sock socks tie ties glove gloves jewelry jewellery necklace earring earrings watch watches "
    "sunglasses hanger hangers accessory accessories wallet wallets umbrella button buttons".split()
)

# Google product taxonomy ids for apparel (Merchant Center `google_product_category` may hold the bare id).
GOOGLE_PRODUCT_CATEGORY_IDS: dict[str, str] = {
    "203": "outerwear",  # Apparel & Accessories > Clothing > Outerwear
    "204": "pants",  # ... > Clothing > Pants
    "207": "shorts",  # ... > Clothing > Shorts
    "212": "shirt",  # ... > Clothing > Shirts & Tops
    "1581": "skirt",  # ... > Clothing > Skirts
    "2271": "dress",  # ... > Clothing > Dresses
    "5182": "one-piece",  # ... > Clothing > One-Pieces
    "5250": "jumpsuit",  # ... > Clothing > One-Pieces > Jumpsuits & Rompers
    "5598": "coat",  # ... > Clothing > Outerwear > Coats & Jackets
}

_CLASS_OF_WORD: dict[str, GarmentClass] = {
    **dict.fromkeys(_UPPER_WORDS, GarmentClass.UPPER),
    **dict.fromkeys(_LOWER_WORDS, GarmentClass.LOWER),
    **dict.fromkeys(_FULL_WORDS, GarmentClass.FULL),
}
# Lookup keys: canonical words with hyphens as spaces, plus synonyms.
_LOOKUP: dict[str, str] = {word.replace("-", " "): word for word in _CLASS_OF_WORD} | _SYNONYMS
_LONGEST_PHRASE = max(len(key.split()) for key in _LOOKUP)

_SEGMENT_SEPARATORS = re.compile(r"\s*(?:>|/|\\|\|)\s*")  # taxonomy path levels
_ALTERNATIVE_SEPARATORS = re.compile(r"\s*(?:&|\+|,|;|\band\b)\s*")  # "Shirts & Tops", "Coats, Jackets"
_NON_WORD = re.compile(r"[^a-z0-9]+")
_ID_PREFIX = re.compile(r"^\s*(\d+)\s*(?:-|$)")  # "2271" or "2271 - Apparel & Accessories > ..."


@dataclass(frozen=True)
class CategoryMatch:
    """A recognised category: the canonical word (e.g. 't-shirt') and where it sits on the body."""

    word: str
    garment_class: GarmentClass


def _singular_forms(word: str) -> list[str]:
    """The word and its plausible singulars ('dresses' -> 'dresse', 'dress'; 'hoodies' -> 'hoodie')."""
    forms = [word]
    if word.endswith("ies"):
        forms += [word[:-1], word[:-3] + "y"]
    elif word.endswith("es"):
        forms += [word[:-1], word[:-2]]
    elif word.endswith("s"):
        forms.append(word[:-1])
    return forms


def _lookup_phrase(words: list[str], lookup: Mapping[str, str]) -> str | None:
    """The canonical word for a phrase, trying its last word in singular forms too."""
    for last in _singular_forms(words[-1]):
        canonical = lookup.get(" ".join([*words[:-1], last]))
        if canonical is not None:
            return canonical
    return None


def _match_alternative(text: str, loose: bool, lookup: Mapping[str, str]) -> str | None:
    """Match one alternative such as 'Slim Fit Jeans': longest trailing phrase first, then (loose) other words."""
    words = _NON_WORD.sub(" ", text.lower()).split()
    if not words:
        return None
    # 1. The head noun is last in English ("Denim Jacket", "Shirt Dress"); try trailing phrases, longest first.
    longest = _LONGEST_PHRASE if lookup is _LOOKUP else max(len(key.split()) for key in lookup)
    for start in range(max(0, len(words) - longest), len(words)):
        canonical = _lookup_phrase(words[start:], lookup)
        if canonical is not None:
            return canonical
    # 2. A known non-garment head noun ends the search ("Dress Shoes" is shoes).
    if not loose or words[-1] in _NOT_GARMENTS:
        return None
    # 3. Otherwise any garment word, right to left ("Trousers Black").
    for index in range(len(words) - 2, -1, -1):
        canonical = _lookup_phrase([words[index]], lookup)
        if canonical is not None:
            return canonical
    return None


def _match_segment(segment: str, loose: bool, lookup: Mapping[str, str]) -> tuple[str | None, bool]:
    """Match one taxonomy level; also say whether it names a non-garment (which stops the search)."""
    alternatives = [part for part in _ALTERNATIVE_SEPARATORS.split(segment) if part.strip()]
    for alternative in alternatives:
        canonical = _match_alternative(alternative, loose, lookup)
        if canonical is not None:
            return canonical, False
    names_non_garment = any(
        (words := _NON_WORD.sub(" ", part.lower()).split()) and words[-1] in _NOT_GARMENTS
        for part in alternatives
    )
    return None, names_non_garment


def check_extra_words(extra: Mapping[str, str], source: str = "categories") -> dict[str, str]:
    """A profile's extra category words (word -> a known category word), normalised; ValueError if off."""
    if not isinstance(extra, Mapping):
        raise ValueError(f"{source} maps words to known categories, e.g. {{robe: dress, kleid: dress}}.")
    checked = {}
    for word, target in extra.items():
        key = " ".join(_NON_WORD.sub(" ", str(word).lower()).split())
        if not key:
            raise ValueError(f"{source}: {word!r} is not a word; write the category as your CSVs spell it.")
        if target not in _CLASS_OF_WORD:
            raise ValueError(
                f"{source}.{word}: {target!r} is not a known category word; map it to one of "
                f"{', '.join(sorted(_CLASS_OF_WORD))}."
            )
        checked[key] = str(target)
    return checked


def match_category(
    text: str, loose: bool = True, extra_words: Mapping[str, str] | None = None
) -> CategoryMatch | None:
    """Recognise a category word, phrase, taxonomy path ('... > Clothing > Dresses') or Google id; else None.

    `loose=False` accepts only phrases whose last word is a garment ('Summer Dress', not 'Top Seller').
    `extra_words` (from the profile: other languages, house terms) map more words to known category words.
    """
    lookup: Mapping[str, str] = _LOOKUP | check_extra_words(extra_words) if extra_words else _LOOKUP
    id_match = _ID_PREFIX.match(text)
    if id_match is not None and id_match.group(1) in GOOGLE_PRODUCT_CATEGORY_IDS:
        word = GOOGLE_PRODUCT_CATEGORY_IDS[id_match.group(1)]
        return CategoryMatch(word, _CLASS_OF_WORD[word])
    # The last (most specific) taxonomy level first; stop at a level that names a non-garment.
    for segment in reversed(_SEGMENT_SEPARATORS.split(text.strip())):
        canonical, names_non_garment = _match_segment(segment, loose, lookup)
        if canonical is not None:
            return CategoryMatch(canonical, _CLASS_OF_WORD[canonical])
        if names_non_garment:
            return None
    return None


def accepted_category_words() -> dict[GarmentClass, tuple[str, ...]]:
    """The canonical category words per garment class, for messages and documentation."""
    return {
        GarmentClass.UPPER: _UPPER_WORDS,
        GarmentClass.LOWER: _LOWER_WORDS,
        GarmentClass.FULL: _FULL_WORDS,
    }


def unknown_category_reason(text: str) -> str:
    """A merchandiser-facing reason for a category that no garment class matches."""
    words = accepted_category_words()
    if not text.strip():
        opening = "No category is given."
    else:
        opening = f"'{text.strip()}' is not a garment category onmodel can place."
    return (
        f"{opening} Use one of: tops {', '.join(words[GarmentClass.UPPER][:14])}...; "
        f"bottoms {', '.join(words[GarmentClass.LOWER][:8])}...; "
        f"full-length {', '.join(words[GarmentClass.FULL][:7])}... (plurals and paths such as "
        "'Clothing > Dresses' work too; words in other languages can be added under the profile's "
        "`categories`, e.g. kleid: dress)."
    )
