"""get_segmenter: names, options, a clear error for unknown names, rembg imported only when chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.segmentation import BACKENDS, get_segmenter


def test_known_backends_build() -> None:
    assert get_segmenter("classical").name == "classical"
    assert get_segmenter("alpha").name == "alpha"
    assert get_segmenter("classical", work_side=256).options.work_side == 256
    assert set(BACKENDS) == {"classical", "rembg", "alpha"}


def test_unknown_backend_and_option() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        get_segmenter("magic")
    with pytest.raises(ValueError, match="no_such_option"):
        get_segmenter("classical", no_such_option=1)


def test_rembg_is_not_imported_for_the_classical_backend() -> None:
    code = (
        "import sys, numpy as np\n"
        "from pipelines.segmentation import get_segmenter\n"
        "get_segmenter('classical')(np.full((64, 64, 3), 250, np.uint8))\n"
        "print('rembg' in sys.modules, 'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
