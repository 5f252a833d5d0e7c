"""rembg backend end to end with a tiny ONNX model the test builds itself, in a temporary model home."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pipelines.segmentation import get_segmenter, rembg_backend
from pipelines.segmentation.metrics import iou
from pipelines.synthetic import FlatlaySpec, make_flatlay

pytest.importorskip("rembg")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")


def export_darkness_model(path: Path) -> None:
    """A 1x1 conv 'saliency' net (darker = more garment), exported with the legacy TorchScript exporter."""
    net = torch.nn.Conv2d(3, 1, kernel_size=1)
    with torch.no_grad():
        net.weight.fill_(-1.0)
        net.bias.zero_()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, 320, 320)
    with warnings.catch_warnings():  # the legacy exporter needs only `onnx`; it warns that it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, (dummy,), str(path), dynamo=False, input_names=["input"], output_names=["mask"]
        )


@pytest.fixture()
def model_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """rembg's model home in a temporary folder, holding u2net.onnx (our tiny net) in rembg's layout."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    export_darkness_model(tmp_path / "models" / "u2net" / "u2net.onnx")
    rembg_backend._SESSIONS.clear()
    return tmp_path


def test_rembg_backend_end_to_end(model_home: Path) -> None:
    spec = FlatlaySpec(
        group="plain", kind="tee", width=320, height=320, garment_rgb=(20, 30, 40), noise_sigma=0.5
    )
    image, truth = make_flatlay(spec)
    segmenter = get_segmenter("rembg", model="u2net")
    result = segmenter(image)
    assert result.cutout.shape == (320, 320, 4)
    np.testing.assert_array_equal(result.cutout[..., :3], image)
    assert iou(result.mask, truth) >= 0.9
    assert "mask_too_small" not in result.flags


def test_one_session_per_process(model_home: Path) -> None:
    first = get_segmenter("rembg", model="u2net")
    second = get_segmenter("rembg", model="u2net")
    assert first.session is second.session
    assert len(rembg_backend._SESSIONS) == 1


def test_explicit_model_path_outside_the_home(tmp_path: Path, model_home: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "my_cutter.onnx"
    export_darkness_model(elsewhere)
    segmenter = get_segmenter("rembg", model="u2net_custom", model_path=elsewhere)
    image, truth = make_flatlay(FlatlaySpec(group="plain", width=256, height=256, garment_rgb=(10, 10, 10)))
    assert iou(segmenter(image).mask, truth) >= 0.9


def test_missing_model_file_names_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"isnet-general-use\.onnx") as error:
        get_segmenter("rembg", model="isnet-general-use")
    assert str(tmp_path / "models" / "isnet-general-use") in str(error.value)
    with pytest.raises(ValueError, match="does not exist"):
        get_segmenter("rembg", model="u2net", model_path=tmp_path / "nope.onnx")


def test_bad_options_are_clear_errors(model_home: Path) -> None:
    with pytest.raises(ValueError, match="not supported"):
        get_segmenter("rembg", model="sam")
    with pytest.raises(ValueError, match="cloth_category"):
        get_segmenter("rembg", model="u2net_cloth_seg", cloth_category="hats")
    with pytest.raises(ValueError, match="device"):
        get_segmenter("rembg", model="u2net", device="tpu")
    with pytest.raises(ValueError, match="RGB"):
        get_segmenter("rembg", model="u2net")(np.zeros((32, 32, 4), np.uint8))
