"""Read and validate a product CSV: good rows become ProductRecords, every problem a Reject a person can act on."""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog.categories import CategoryMatch, check_extra_words, match_category, unknown_category_reason
from catalog.csv_reading import decode_csv_bytes, read_csv_bytes, split_csv_text
from catalog.dialects import DIALECTS, RawProduct, detect_dialect
from catalog.errors import CatalogError, ImageRefError
from catalog.image_refs import ImagePolicy, ImageRefResolver
from catalog.schema import CatalogReadResult, ImageRef, ProductRecord, RecordSequence, Reject

MAX_VARIANTS = 16
MAX_SKU_LENGTH = 100
IMAGE_CACHE_SIZE = 4096  # distinct image cells resolved once and kept (see ValidationContext.images)
_SKU_CHARACTER = re.compile(r"[A-Za-z0-9._-]")
_SAFE_SKU = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # no leading dot: '.', '..' and hidden files
_POSE_SEPARATORS = re.compile(r"[|;,]")
_POSE_SPACES = re.compile(r"[\s\-]+")
_match_category_cached = functools.lru_cache(maxsize=4096)(match_category)  # categories repeat a lot


def normalise_pose(name: str) -> str:
    """'Three Quarter-Left ' -> 'three_quarter_left' (the spelling pose files use)."""
    return _POSE_SPACES.sub("_", name.strip().lower())


@dataclass
class ValidationContext:
    """What every row's checks share: folders, policy, known poses, and a cache of resolved images."""

    resolver: ImageRefResolver
    known_poses: frozenset[str] | None
    # raw cell -> ref or the reason it failed; the most recently used IMAGE_CACHE_SIZE (repeats are mostly near
    # each other, and a spooled run must not hold one ref per distinct photo of a 100k-row CSV)
    images: OrderedDict[str, ImageRef | str] = field(default_factory=OrderedDict)
    extra_categories: dict[str, str] = field(default_factory=dict)  # the profile's extra category words
    categories: dict[str, CategoryMatch | None] = field(default_factory=dict)  # cell -> match (values repeat)

    def category(self, text: str) -> CategoryMatch | None:
        """The category a cell names, with the profile's extra words; matched once per distinct value."""
        if not self.extra_categories:
            return _match_category_cached(text)
        if text not in self.categories:
            self.categories[text] = match_category(text, extra_words=self.extra_categories)
        return self.categories[text]

    def resolve(self, raw: str) -> ImageRef:
        """Resolve an image cell once per distinct value (catalogues often repeat images)."""
        cached = self.images.get(raw)
        if cached is None:
            try:
                cached = self.resolver(raw)
            except ImageRefError as error:
                cached = str(error)
            self.images[raw] = cached
            if len(self.images) > IMAGE_CACHE_SIZE:
                self.images.popitem(last=False)
        else:
            self.images.move_to_end(raw)
        if isinstance(cached, str):
            raise ImageRefError(cached)
        return cached


def _sku_problem(sku: str) -> str | None:
    """Why a SKU cannot name output files, or None when it can."""
    if not sku:
        return "The SKU is empty. Every product needs a SKU (letters, digits, '-', '_' and '.')."
    if len(sku) > MAX_SKU_LENGTH:
        return f"The SKU is {len(sku)} characters long; keep it to {MAX_SKU_LENGTH} at most."
    if _SAFE_SKU.fullmatch(sku):
        return None
    bad = sorted({character for character in sku if not _SKU_CHARACTER.fullmatch(character)})
    if not bad:
        return f"The SKU '{sku}' starts with '.', which hides files; start it with a letter or digit."
    shown = ", ".join("a space" if character == " " else f"'{character}'" for character in bad)
    return (
        f"The SKU '{sku}' contains {shown}, which cannot be used in a file name. "
        "Use only letters, digits, '-', '_' and '.'."
    )


@functools.lru_cache(maxsize=4096)  # few distinct pose lists per catalogue
def _parse_poses(text: str, known_poses: frozenset[str] | None) -> tuple[tuple[str, ...], str | None]:
    """(poses, problem): names split on | ; or , and normalised; unknown names are the problem."""
    poses = tuple(
        dict.fromkeys(pose for part in _POSE_SEPARATORS.split(text) if (pose := normalise_pose(part)))
    )
    if known_poses is None:
        return poses, None
    unknown = [pose for pose in poses if pose not in known_poses]
    if not unknown:
        return poses, None
    listed = ", ".join(f"'{pose}'" for pose in unknown)
    return poses, (
        f"The pose(s) {listed} are not known. Known poses: {', '.join(sorted(known_poses))} "
        "(separate several with |)."
    )


def _parse_variants(text: str) -> tuple[int | None, str | None]:
    """(variants, problem): empty means the profile default; otherwise a whole number 1..16."""
    if not text:
        return None, None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or number != int(number) or not 1 <= number <= MAX_VARIANTS:  # NaN or not whole
        return None, f"'{text}' is not a whole number of variants from 1 to {MAX_VARIANTS}."
    return int(number), None


def validate_product(product: RawProduct, checks: ValidationContext) -> ProductRecord | list[Reject]:
    """A ProductRecord when every field is usable, otherwise one Reject per problem (all reported at once)."""
    problems: list[tuple[str, str]] = []  # (field, reason)

    if (problem := _sku_problem(product.sku)) is not None:
        problems.append(("sku", problem))
    image: ImageRef | None = None
    try:
        image = checks.resolve(product.image)
    except ImageRefError as error:
        reason = str(error)
        if not product.image:
            reason += " Give a file path relative to the CSV (e.g. images/shirt.jpg) or an http(s) link."
        problems.append(("image", reason))
    category = checks.category(product.category) if product.category else None
    if category is None:
        problems.append(("category", unknown_category_reason(product.category)))
    poses, problem = _parse_poses(product.poses, checks.known_poses)
    if problem is not None:
        problems.append(("poses", problem))
    variants, problem = _parse_variants(product.variants)
    if problem is not None:
        problems.append(("variants", problem))

    if problems or image is None or category is None:
        return [
            Reject(row=product.row, sku=product.sku, column=product.columns.get(name, name), reason=reason)
            for name, reason in problems
        ]
    extra_images = []
    for raw in product.extra_images:
        try:
            extra_images.append(checks.resolve(raw))
        except ImageRefError:
            continue  # secondary images are optional: an unusable one is dropped, the product goes on
    return ProductRecord(
        sku=product.sku,
        image=image,
        category=category.word,
        garment_class=category.garment_class,
        row=product.row,
        title=product.title,
        color=product.color,
        gender=product.gender,
        poses=poses,
        variants=variants,
        prompt=product.prompt,
        negative_prompt=product.negative_prompt,
        extra_images=tuple(extra_images),
        source_rows=product.source_rows,
        source_identity=product.source_identity,
        variant_skus=product.variant_skus or (product.sku,),
        covered=product.covered,
    )


def _covered_rejects(product: RawProduct, why: str) -> list[Reject]:
    """The rows a product would have covered, rejected with it (every row ends in a state of its own)."""
    reason = f"This row is a variant of product '{product.sku}' (row {product.row}), which {why}."
    return [
        Reject(row=covered.row, sku=covered.sku, column=product.columns.get("sku", "sku"), reason=reason)
        for covered in product.covered
    ]


def _duplicate_reject(product: RawProduct, first_row: int) -> Reject:
    """The reject for a SKU seen before (first row wins)."""
    return Reject(
        row=product.row,
        sku=product.sku,
        column=product.columns.get("sku", "sku"),
        reason=(
            f"The SKU '{product.sku}' already appears in row {first_row}; that row is used and this one skipped "
            "(SKUs differing only in upper/lower case count as the same, as their image files would collide)."
        ),
    )


def read_catalog(
    csv_path: Path,
    policy: ImagePolicy | None = None,
    known_poses: set[str] | None = None,
    extra_categories: Mapping[str, str] | None = None,
    records: RecordSequence | None = None,
) -> CatalogReadResult:
    """Read a product CSV into records and rejects.

    records: where the good records go as they are validated (a run's spool on disk); a new list by default.

    Only a missing or unreadable file raises `CatalogError`; a file whose content cannot be used (empty, header
    only, not text, unknown header) gives a result with one row-0 reject, so callers record it like any other.
    """
    csv_path = Path(csv_path)
    policy = policy or ImagePolicy()
    result = CatalogReadResult() if records is None else CatalogReadResult(records=records)

    # 1. Read the bytes (raises CatalogError: there is nothing to attach rejects to).
    data = read_csv_bytes(csv_path)
    try:
        # 2. Decode (the bytes go at once: a run's peak memory is this function's), then check the rows: spreadsheet
        #    numbers, stray delimiters (those rows become rejects).
        decoded = decode_csv_bytes(data)
        del data
        table = split_csv_text(decoded)
        del decoded  # after a "sep=" line the table holds a copy of the text without it
        # 3. Detect the header dialect.
        dialect = detect_dialect(table.headers)
    except CatalogError as error:
        result.rejects.append(Reject(row=0, sku="", column=error.column, reason=str(error)))
        return result
    result.dialect, result.rows_read = dialect.name, table.rows_read

    # 4. Map rows to products (a Shopify product folds several rows together), each made as it is validated.
    rejects: list[Reject] = list(table.rejects)
    products = dialect.to_products(table, rejects)
    del table

    # 5. Validate each product, and skip repeated SKUs (the first row wins, even when it is itself rejected).
    poses = frozenset(normalise_pose(pose) for pose in known_poses) if known_poses is not None else None
    checks = ValidationContext(
        resolver=ImageRefResolver(csv_path.parent, policy),
        known_poses=poses,
        extra_categories=check_extra_words(extra_categories or {}),
    )
    first_row_of_sku: dict[str, int] = {}
    for product in products:  # in row order, each dropped once validated (a spooled run holds none)
        if product.sku:
            first_row = first_row_of_sku.setdefault(product.sku.casefold(), product.row)
            if first_row != product.row:
                rejects.append(_duplicate_reject(product, first_row))
                rejects.extend(_covered_rejects(product, f"repeats the product key of row {first_row}"))
                continue
        outcome = validate_product(product, checks)
        if isinstance(outcome, ProductRecord):
            result.records.append(outcome)
        else:
            rejects.extend(outcome)
            rejects.extend(_covered_rejects(product, "was rejected (see that row)"))

    # 6. Rejects in spreadsheet order, so the verdict reads top to bottom.
    result.rejects = sorted(rejects, key=lambda reject: reject.row)
    return result


def rejected_rows(rejects: Iterable[Reject]) -> set[int]:
    """The distinct rows with at least one reject (row 0 is the file itself)."""
    return {reject.row for reject in rejects}


def format_verdict(result: CatalogReadResult) -> str:
    """A short report for `onmodel validate`: dialect, counts, then one line per reject."""
    titles = {dialect.name: dialect.title for dialect in DIALECTS}
    lines = []
    if result.dialect:
        lines.append(f"Read as: {titles.get(result.dialect, result.dialect)} ({result.rows_read} data rows)")
    else:
        lines.append("The file could not be read as a product CSV.")
    n_rejected = len(rejected_rows(reject for reject in result.rejects if reject.row > 0))
    lines.append(f"{len(result.records)} products ok, {n_rejected} rows rejected")
    for reject in result.rejects:
        if reject.row == 0:
            lines.append(f"  File: {reject.reason}")
            continue
        where = f"Row {reject.row}" + (f", column '{reject.column}'" if reject.column else "")
        sku = f" (SKU {reject.sku})" if reject.sku else ""
        lines.append(f"  {where}{sku}: {reject.reason}")
    return "\n".join(lines)
