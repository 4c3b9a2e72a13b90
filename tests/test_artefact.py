"""The export <-> runtime metadata contract: round trips and one-line errors on foreign or broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgan_deploy.artefact import ARTEFACT_FORMAT, ArtefactMetadata
from tgan_deploy.errors import TganError


def meta() -> ArtefactMetadata:
    return ArtefactMetadata(kind="image", latent_dim=100, resolution=64, channels=3, output_dtype="uint8",
                            objective="t-sgan", files={"onnx": "generator.onnx"})


def test_round_trips() -> None:
    m = meta()
    assert ArtefactMetadata.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    props = m.to_onnx_props()
    assert all(isinstance(v, str) for v in props.values()) and props["format"] == json.dumps(ARTEFACT_FORMAT)
    assert ArtefactMetadata.from_onnx_props(props) == m
    assert (m.output_name, m.output_range) == ("image", (0.0, 255.0))
    points = ArtefactMetadata(kind="points", latent_dim=2, resolution=None, channels=None)
    assert (points.output_name, points.output_range) == ("points", (-1.0, 1.0))


@pytest.mark.parametrize("text,match", [
    ('{"format": "something-else/1"}', "not a tgan-deploy artefact"),
    ("[1, 2]", "not a tgan-deploy artefact"),
    (json.dumps({"format": ARTEFACT_FORMAT, "kind": "image"}), "artefact metadata is incomplete"),
    ("{not json", "cannot read artefact metadata"),
])
def test_bad_model_json(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(TganError, match=match) as info:
        ArtefactMetadata.read_json(tmp_path / "model.json")
    assert "\n" not in str(info.value)


def test_missing_model_json(tmp_path: Path) -> None:
    with pytest.raises(TganError, match="cannot read artefact metadata"):
        ArtefactMetadata.read_json(tmp_path / "model.json")
