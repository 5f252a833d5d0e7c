"""`onmodel export --preset P`: derive a preset from the stored masters of an output folder, never rendering.

The same `derive_from_master` step a run uses for a preset it has not made yet; the review app's export of
approved images goes through it too.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from pipelines.presets import MASTER, Preset
from pipelines.production.layout import Storage, read_json, sidecar_key
from pipelines.production.stages import Resources, derive_from_master

# Sidecar fields that differ between a master and its derivatives by design.
_PER_PRESET_FIELDS = ("preset", "format")


@dataclass
class ExportResult:
    """What an export did, by job id."""

    preset: str
    written: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # already derived from the present master
    missing_master: list[str] = field(default_factory=list)  # produced once, master gone (re-run to redo)

    def describe(self) -> str:
        text = (
            f"{self.preset}: {len(self.written)} images derived from their masters, "
            f"{len(self.current)} already current"
        )
        if self.missing_master:
            text += f", {len(self.missing_master)} without a stored master (run the catalogue again to render them)"
        return text


def _is_current(storage: Storage, key: str, master_key: str) -> bool:
    """The derived file exists and was made from this master (same render record, apart from the preset)."""
    if not (storage.exists(key) and storage.exists(sidecar_key(key))):
        return False
    derived, master = read_json(storage, sidecar_key(key)), read_json(storage, sidecar_key(master_key))
    for name in _PER_PRESET_FIELDS:
        derived.pop(name, None)
        master.pop(name, None)
    return bool(derived == master)


def export_preset(
    preset: Preset, res: Resources, *, only: Collection[str] = (), target: Storage | None = None
) -> ExportResult:
    """Derive `preset` for every produced job (or the products in `only`) from its stored master.

    target: another folder to write into (for an upload), else the output folder itself, where the job store
    then records the preset so every later render keeps it current.
    """
    result = ExportResult(preset=preset.name)
    out = target if target is not None else res.storage
    layout = res.layout
    for state in sorted(res.store.all_rows(), key=lambda row: row.job_id):
        if state.status != "produced" or (only and state.sku not in only):
            continue
        master_key = layout.master_image(state.sku, state.job_id)
        if not (res.storage.exists(master_key) and res.storage.exists(sidecar_key(master_key))):
            result.missing_master.append(state.job_id)
            continue
        key = layout.image(preset, state.sku, state.job_id)
        if preset.name == MASTER and target is None:
            result.current.append(state.job_id)
            continue
        if out is res.storage and _is_current(res.storage, key, master_key):
            result.current.append(state.job_id)
            continue
        derive_from_master(state.sku, state.job_id, [preset], res.storage, layout, target=target)
        result.written.append(state.job_id)
        if target is None:
            res.store.record_produced(
                state.job_id,
                sku=state.sku,
                image_hash=state.image_hash,
                fingerprint=state.config_fingerprint,
                outputs=list(dict.fromkeys([*state.outputs, key, sidecar_key(key)])),
                seed=state.seed if state.seed is not None else 0,
                flags=list(state.flags),
            )
    return result
