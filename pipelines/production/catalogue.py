"""The catalogue view: every product ever produced in one output folder, with its latest state.

Each run writes its own report under runs/<id>/; the top-level index and manifest show the merged catalogue,
so `--only`, a second CSV or an upload run into the same folder never make products vanish from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pipelines.production.outcomes import ProductOutcome, RunReport

CATALOGUE_VERSION = 1


class CatalogueVersionError(ValueError):
    """catalogue.json was written by a newer onmodel."""


@dataclass(frozen=True)
class CatalogueEntry:
    """A product's latest outcome and the run (and CSV) it came from."""

    run_id: str
    csv: str
    product: ProductOutcome

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "csv": self.csv, "product": self.product.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CatalogueEntry:
        return cls(str(data["run_id"]), str(data["csv"]), ProductOutcome.from_dict(data["product"]))


def read_entries(data: dict[str, Any] | None) -> dict[str, CatalogueEntry]:
    """The entries of a catalogue.json document (None: a folder without one yet)."""
    if data is None:
        return {}
    if data.get("version") != CATALOGUE_VERSION:
        raise CatalogueVersionError(
            f"catalogue.json has version {data.get('version')!r}, this onmodel reads {CATALOGUE_VERSION}; "
            "upgrade onmodel to write into this output folder."
        )
    return {sku: CatalogueEntry.from_dict(entry) for sku, entry in data.get("entries", {}).items()}


def merge(entries: dict[str, CatalogueEntry], report: RunReport) -> dict[str, CatalogueEntry]:
    """The catalogue after a run: its products replace their earlier entries, every other product stays."""
    merged = dict(entries)
    for product in report.products:
        merged[product.sku] = CatalogueEntry(run_id=report.run_id, csv=report.csv, product=product)
    return merged


def to_document(entries: dict[str, CatalogueEntry]) -> dict[str, Any]:
    return {"version": CATALOGUE_VERSION, "entries": {sku: e.to_dict() for sku, e in sorted(entries.items())}}


def catalogue_report(entries: dict[str, CatalogueEntry], latest: RunReport) -> RunReport:
    """The whole catalogue as a report (products in CSV then row order), with the latest run's rejects."""
    ordered = sorted(entries.values(), key=lambda e: (e.csv, e.product.row, e.product.sku))
    return replace(latest, products=[entry.product for entry in ordered], rejects=list(latest.rejects))
