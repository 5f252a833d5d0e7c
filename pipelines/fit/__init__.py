"""Garment fit: panels split at the garment's landmarks follow the body in the pose; pixels only resampled."""

from pipelines.fit.garment_fit import FitResult, fit_garment

__all__ = ["FitResult", "fit_garment"]
