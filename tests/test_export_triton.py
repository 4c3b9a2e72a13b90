"""--triton-repo: model folders Triton's own schema (tritonclient's model_config_pb2) accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from _factories import small_config, write_checkpoint

from tgan_deploy.errors import TganError
from tgan_deploy.export import triton as triton_mod
from tgan_deploy.export.pipeline import ExportOptions, run_export

pytest.importorskip("google.protobuf")


def _schema_available() -> bool:
    try:
        return triton_mod._model_config_schema() is not None
    except Exception:
        return False


@pytest.mark.skipif(not _schema_available(), reason="tritonclient (dev extra) not installed")
@pytest.mark.parametrize(("arch", "output", "fp16"), [("dcgan", "uint8", True), ("mlp", "float", False)])
def test_triton_repository(tmp_path: Path, arch: str, output: str, fp16: bool) -> None:
    cfg = small_config(arch, 32)
    ckpt = write_checkpoint(tmp_path / "g.pt", cfg)
    repo = tmp_path / "models"
    meta, _ = run_export(ExportOptions(source=ckpt, out=tmp_path / "export", output=output, fp16=fp16,
                                       max_batch=32, triton_repo=repo), lambda _line: None)
    expected = ["tgan_generator_onnx", *(["tgan_generator_onnx_fp16"] if fp16 else [])]
    assert sorted(p.name for p in repo.iterdir()) == expected
    for name in expected:
        config = triton_mod.parse_config((repo / name / "config.pbtxt").read_text())
        assert config.name == name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == 32 and config.HasField("dynamic_batching")
        (inp,), (out,) = config.input, config.output
        assert inp.name == "z" and list(inp.dims) == [cfg.model.latent_dim]
        assert out.name == meta.output_name
        assert list(out.dims) == ([2] if arch == "mlp" else [3, 32, 32])  # no batch axis
        assert out.data_type == (config.output[0].DESCRIPTOR.fields_by_name["data_type"].enum_type
                                 .values_by_name["TYPE_UINT8" if output == "uint8" else "TYPE_FP32"].number)
        # the served file is the exported graph and runs
        session = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        z = np.zeros((2, cfg.model.latent_dim), np.float32)
        assert session.run(None, {"z": z})[0].shape[0] == 2


@pytest.mark.skipif(not _schema_available(), reason="tritonclient (dev extra) not installed")
def test_schema_rejects_a_broken_config() -> None:
    from google.protobuf import text_format

    with pytest.raises(text_format.ParseError):
        triton_mod.parse_config('name: "x"\nmax_batch_size: "many"\n')


def test_existing_model_folder_refused_without_force(tmp_path: Path) -> None:
    (tmp_path / "tgan_generator_onnx").mkdir()
    with pytest.raises(TganError, match="--force"):
        triton_mod.check_free(tmp_path, ["tgan_generator_onnx"], force=False)
    triton_mod.check_free(tmp_path, ["tgan_generator_onnx"], force=True)
