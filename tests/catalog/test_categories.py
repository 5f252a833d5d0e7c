"""Category words, plurals, paths and Google ids to garment classes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.categories import (
    GOOGLE_PRODUCT_CATEGORY_IDS,
    accepted_category_words,
    check_extra_words,
    match_category,
    unknown_category_reason,
)
from catalog.schema import GarmentClass

UPPER, LOWER, FULL = GarmentClass.UPPER, GarmentClass.LOWER, GarmentClass.FULL


@pytest.mark.parametrize(
    ("text", "word", "garment_class"),
    [
        ("t-shirt", "t-shirt", UPPER),
        ("T-Shirts", "t-shirt", UPPER),
        ("tshirt", "t-shirt", UPPER),
        ("T Shirt", "t-shirt", UPPER),
        ("Tees", "tee", UPPER),
        ("  BLOUSES ", "blouse", UPPER),
        ("Hoodies", "hoodie", UPPER),
        ("Tank Tops", "tank top", UPPER),
        ("cardigan", "cardigan", UPPER),
        ("Sweater Vest", "vest", UPPER),
        ("Denim Jacket", "jacket", UPPER),
        ("Waistcoats", "waistcoat", UPPER),
        ("Polo", "polo", UPPER),
        ("Jerseys", "jersey", UPPER),
        ("trousers", "trousers", LOWER),
        ("Pants", "pants", LOWER),
        ("Slim Fit Jeans", "jeans", LOWER),
        ("shorts", "shorts", LOWER),
        ("Skirts", "skirt", LOWER),
        ("leggings", "leggings", LOWER),
        ("Joggers", "joggers", LOWER),
        ("chinos", "chinos", LOWER),
        ("Trousers black", "trousers", LOWER),
        ("dress", "dress", FULL),
        ("Dresses", "dress", FULL),
        ("Shirt Dress", "dress", FULL),
        ("Jumpsuits", "jumpsuit", FULL),
        ("Rompers", "romper", FULL),
        ("playsuit", "playsuit", FULL),
        ("Overalls", "overalls", FULL),
        ("overall", "overalls", FULL),
        ("Evening Gowns", "gown", FULL),
        ("One-Pieces", "one-piece", FULL),
        ("Apparel & Accessories > Clothing > Dresses", "dress", FULL),
        ("Apparel & Accessories > Clothing > Shirts & Tops", "shirt", UPPER),
        ("Apparel & Accessories > Clothing > One-Pieces > Jumpsuits & Rompers", "jumpsuit", FULL),
        ("Women / Bottoms / Skirts", "skirt", LOWER),
        ("Clothing > Dresses > Maxi", "dress", FULL),  # last level unknown: the one above decides
        ("2271", "dress", FULL),
        ("212", "shirt", UPPER),
        ("204", "pants", LOWER),
        ("1581", "skirt", LOWER),
        ("5182", "one-piece", FULL),
        ("2271 - Apparel & Accessories > Clothing > Dresses", "dress", FULL),
    ],
)
def test_category_words_map_to_garment_classes(text: str, word: str, garment_class: GarmentClass) -> None:
    match = match_category(text)
    assert match is not None
    assert (match.word, match.garment_class) == (word, garment_class)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "scarf",
        "Scarves",
        "shoes",
        "Dress Shoes",  # a non-garment head noun wins over the garment word before it
        "Belts",
        "Apparel & Accessories > Clothing",  # too general to place
        "Apparel & Accessories > Shoes > Dress Shoes",
        "1604",  # Google id for 'Clothing': too general
        "187",
        "gift card",
    ],
)
def test_non_garments_and_general_categories_are_not_matched(text: str) -> None:
    assert match_category(text) is None


def test_strict_matching_needs_a_garment_head_noun() -> None:
    assert match_category("Top Seller", loose=False) is None
    assert match_category("Summer Dress", loose=False) is not None
    assert match_category("Top Seller") is not None  # loose: any garment word counts


def test_every_google_id_maps_to_a_class_word() -> None:
    for google_id, word in GOOGLE_PRODUCT_CATEGORY_IDS.items():
        match = match_category(google_id)
        assert match is not None and match.word == word


def test_every_accepted_word_matches_its_own_class() -> None:
    for garment_class, words in accepted_category_words().items():
        for word in words:
            match = match_category(word)
            assert match is not None and match.garment_class == garment_class, word


def test_unknown_reason_names_the_value_and_accepted_words() -> None:
    reason = unknown_category_reason("scarf")
    assert "'scarf' is not a garment category onmodel can place" in reason
    for word in ("t-shirt", "trousers", "dress"):
        assert word in reason
    assert "No category is given" in unknown_category_reason("  ")


@given(st.text(max_size=60))
def test_match_category_never_raises(text: str) -> None:
    match = match_category(text)
    assert match is None or isinstance(match.garment_class, GarmentClass)


@given(
    st.sampled_from([w for words in accepted_category_words().values() for w in words]),
    st.sampled_from([str.upper, str.title, str.lower]),
    st.text(alphabet=" \t", max_size=3),
)
def test_case_and_surrounding_space_do_not_matter(word: str, case, padding: str) -> None:
    assert match_category(padding + case(word) + padding) == match_category(word)


def test_extra_words_map_other_languages_onto_known_categories() -> None:
    extra = {"Robe": "dress", "kleid": "dress", "jupe": "skirt", "Sommer Hose": "trousers"}
    assert match_category("Kleid") is None
    assert match_category("Kleider", extra_words=extra) is None  # German plurals are not guessed
    for text, word, garment_class in [
        ("Kleid", "dress", GarmentClass.FULL),
        ("Robe longue > Robe", "dress", GarmentClass.FULL),
        ("Damen > Sommer Hose", "trousers", GarmentClass.LOWER),
        ("jupes", "skirt", GarmentClass.LOWER),  # the English plural rule still applies
        ("Denim Jacket", "jacket", GarmentClass.UPPER),  # built-in words still work
    ]:
        found = match_category(text, extra_words=extra)
        assert found is not None and (found.word, found.garment_class) == (word, garment_class), text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"kleid": "frock"}, "'frock' is not a known category word"),
        ({"  ": "dress"}, "is not a word"),
        (["x"], "maps words"),
    ],
)
def test_extra_words_must_map_onto_known_words(extra: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_extra_words(extra)  # type: ignore[arg-type]
