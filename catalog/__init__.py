"""Catalogue input: read product CSVs (native, Shopify, Google Merchant), validate rows, resolve images, job state.

No Prefect and no torch here (DESIGN.md); `flows/` wires these functions into tasks.
"""

from catalog.categories import CategoryMatch, accepted_category_words, match_category
from catalog.csv_reading import CsvTable, read_csv_table
from catalog.dialects import DIALECTS, Dialect, RawProduct, detect_dialect
from catalog.errors import CatalogError, ImageFetchError, ImageRefError, TransientFetchError
from catalog.image_refs import ImagePolicy, fetch_image_bytes, host_allowed, resolve_image_ref
from catalog.read_catalog import format_verdict, normalise_pose, read_catalog
from catalog.schema import CatalogReadResult, GarmentClass, ImageRef, ProductRecord, Reject
from catalog.state import (
    SCHEMA_VERSION,
    JobState,
    JobStore,
    ProductState,
    ReviewDecision,
    RunState,
    SQLiteJobStore,
    SQLJobStore,
    StateStore,
    StateStoreVersionError,
    open_job_store,
)

__all__ = [
    "DIALECTS",
    "SCHEMA_VERSION",
    "CatalogError",
    "CatalogReadResult",
    "CategoryMatch",
    "CsvTable",
    "Dialect",
    "GarmentClass",
    "ImageFetchError",
    "ImagePolicy",
    "ImageRef",
    "ImageRefError",
    "JobState",
    "JobStore",
    "ProductState",
    "ProductRecord",
    "RawProduct",
    "Reject",
    "ReviewDecision",
    "RunState",
    "SQLJobStore",
    "SQLiteJobStore",
    "StateStore",
    "StateStoreVersionError",
    "TransientFetchError",
    "accepted_category_words",
    "detect_dialect",
    "fetch_image_bytes",
    "format_verdict",
    "host_allowed",
    "match_category",
    "normalise_pose",
    "open_job_store",
    "read_catalog",
    "read_csv_table",
    "resolve_image_ref",
]
