"""rembg backend end to end with a tiny ONNX model the test builds itself, in temporary rembg homes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.segmentation import get_segmenter, rembg_backend
from pipelines.segmentation.metrics import iou
from pipelines.testing.flatlays import FlatlaySpec, make_flatlay

rembg = pytest.importorskip("rembg")
onnx = pytest.importorskip("onnx")
pooch = pytest.importorskip("pooch")

from rembg.sessions import sessions  # noqa: E402  (after the importorskip that guards it)


def export_darkness_model(path: Path) -> Path:
    """A 1x1 conv 'saliency' net (darker = more garment) written straight with onnx.helper (no torch)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((1, 3, 1, 1), -1.0, np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(1, np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight", "bias"], ["mask"])],
        "darkness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[weight, bias],
    )
    # Opset 13 / IR 8: old enough for any onnxruntime rembg 2.0.86 runs on.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(autouse=True)
def offline_and_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh HOME, no rembg env vars, and any network or pooch download recorded and refused."""
    for name in ("U2NET_HOME", "REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(f"{args!r} {kwargs!r}")
        raise AssertionError("the rembg backend tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(pooch, "retrieve", refuse)
    return attempts


@pytest.fixture()
def model_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """U2NET_HOME in a temporary folder, holding u2net.onnx (our tiny net) in rembg's per-model layout."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net_home"))
    export_darkness_model(tmp_path / "u2net_home" / "models" / "u2net" / "u2net.onnx")
    return tmp_path / "u2net_home"


def assert_cuts_dark_garment(segmenter: Any) -> None:
    """The tiny darkness net finds a dark garment on the light synthetic background."""
    image, truth = make_flatlay(FlatlaySpec(group="plain", width=128, height=128, garment_rgb=(10, 10, 10)))
    assert iou(segmenter(image).mask, truth) >= 0.9


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


def test_u2net_home_model_is_found_through_rembg_new_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "shared"))
    model_file = export_darkness_model(tmp_path / "shared" / "u2net.onnx")  # rembg's flat legacy layout
    calls: list[tuple[str, dict[str, Any]]] = []
    real_new_session = rembg.new_session

    def spy(model_name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((model_name, kwargs))
        return real_new_session(model_name, *args, **kwargs)

    monkeypatch.setattr(rembg, "new_session", spy)
    segmenter = get_segmenter("rembg", model="u2net")
    assert segmenter.model_file == model_file
    assert [(name, kwargs["providers"]) for name, kwargs in calls] == [("u2net", ["CPUExecutionProvider"])]
    assert_cuts_dark_garment(segmenter)


def test_xdg_data_home_dot_u2net_model_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    model_file = export_darkness_model(tmp_path / "xdg" / ".u2net" / "u2net.onnx")
    segmenter = get_segmenter("rembg", model="u2net")
    assert segmenter.model_file == model_file
    assert_cuts_dark_garment(segmenter)


def test_flat_file_in_dot_rembg_is_not_found(tmp_path: Path) -> None:
    export_darkness_model(tmp_path / "home" / ".rembg" / "u2net.onnx")  # a place rembg never looks
    with pytest.raises(ValueError, match="not on this machine") as error:
        get_segmenter("rembg", model="u2net")
    expected = tmp_path / "home" / ".rembg" / "models" / "u2net" / "u2net.onnx"
    assert str(expected) in str(error.value)
    assert str(tmp_path / "home" / ".u2net" / "u2net.onnx") in str(error.value)


def test_missing_model_error_teaches_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_and_isolated: list[str]
) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "empty"))
    with pytest.raises(ValueError) as error:
        get_segmenter("rembg", model="isnet-general-use")
    message = str(error.value)
    expected = Path(sessions["isnet-general-use"].model_dir()) / "isnet-general-use.onnx"
    assert expected == tmp_path / "empty" / "models" / "isnet-general-use" / "isnet-general-use.onnx"
    for part in ("'isnet-general-use'", str(expected), "U2NET_HOME", "rembg d isnet-general-use"):
        assert part in message
    assert offline_and_isolated == []
    assert not (tmp_path / "empty").exists()  # rembg's downloader would have created its model folder
    with pytest.raises(ValueError, match="does not exist"):
        get_segmenter("rembg", model="u2net", model_path=tmp_path / "nope.onnx")


def test_explicit_model_path_outside_rembg_homes(tmp_path: Path, offline_and_isolated: list[str]) -> None:
    elsewhere = export_darkness_model(tmp_path / "elsewhere" / "my_cutter.onnx")
    custom = get_segmenter("rembg", model="u2net_custom", model_path=elsewhere)
    named = get_segmenter(
        "rembg", model="u2net", model_path=str(elsewhere)
    )  # own weights, u2net's processing
    for segmenter, model in ((custom, "u2net_custom"), (named, "u2net")):
        assert segmenter.model_file == elsewhere
        assert isinstance(segmenter.session, sessions[model])
        assert_cuts_dark_garment(segmenter)
    assert offline_and_isolated == []


def test_segmenters_hold_their_own_sessions(model_home: Path) -> None:
    first = get_segmenter("rembg", model="u2net")
    second = get_segmenter("rembg", model="u2net")
    assert first.session is not second.session  # the per-process cache is flows/caches.py's, not ours
    assert isinstance(first.session, sessions["u2net"])
    module_dicts = [
        name
        for name, value in vars(rembg_backend).items()
        if isinstance(value, dict) and not name.startswith("__")
    ]
    assert module_dicts == [], f"no module-level session cache in rembg_backend; found {module_dicts}"


def test_bad_options_are_clear_errors(model_home: Path) -> None:
    with pytest.raises(ValueError, match="not supported"):
        get_segmenter("rembg", model="sam")
    with pytest.raises(ValueError, match="cloth_category"):
        get_segmenter("rembg", model="u2net_cloth_seg", cloth_category="hats")
    with pytest.raises(ValueError, match="device"):
        get_segmenter("rembg", model="u2net", device="tpu")
    with pytest.raises(ValueError, match="RGB"):
        get_segmenter("rembg", model="u2net")(np.zeros((32, 32, 4), np.uint8))
