"""Mask quality measures against ground truth: IoU and boundary F-score."""

from __future__ import annotations

import cv2
import numpy as np


def check_inputs(predicted: np.ndarray, truth: np.ndarray) -> None:
    """Raise a ValueError when the masks cannot be compared."""
    if predicted.shape != truth.shape or predicted.ndim != 2:
        raise ValueError(f"masks must be 2-D and the same shape; got {predicted.shape} and {truth.shape}.")


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks (nonzero = garment); 1.0 when both are empty."""
    check_inputs(predicted, truth)
    a, b = predicted > 0, truth > 0
    union = int((a | b).sum())
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a boolean mask."""
    m = mask.astype(np.uint8)
    return (m > 0) & (cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) == 0)


def boundary_f(predicted: np.ndarray, truth: np.ndarray, tolerance_px: float | None = None) -> float:
    """Boundary F-score: share of each boundary within tolerance of the other (default 0.4% of the diagonal)."""
    check_inputs(predicted, truth)
    h, w = truth.shape
    tolerance = tolerance_px if tolerance_px is not None else max(1.0, 0.004 * float(np.hypot(h, w)))
    pb, tb = _boundary(predicted > 0), _boundary(truth > 0)
    if not pb.any() and not tb.any():
        return 1.0
    if not pb.any() or not tb.any():
        return 0.0
    # Distance of every pixel to the nearest boundary pixel of the other mask.
    to_truth = cv2.distanceTransform((~tb).astype(np.uint8), cv2.DIST_L2, 3)
    to_pred = cv2.distanceTransform((~pb).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((to_truth[pb] <= tolerance).mean())
    recall = float((to_pred[tb] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
