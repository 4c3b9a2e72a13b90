"""What a MODEL argument points at: an ONNX file, an export directory, a TensorRT engine, or a checkpoint.

    export dir (has model.json)  -> its ONNX file and TensorRT engine(s), metadata from model.json; a style
                                    model's mapping and synthesis graphs (ONNX and engines) too
    *.onnx                       -> metadata from model.json beside it, else the file's metadata_props
    *.plan / *.engine            -> metadata from model.json beside it (an engine cannot carry it)
    *.pt or a run directory      -> a checkpoint (torch backend only)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tgan_deploy.artefact import MAPPING_ROLE, MODEL_JSON, SYNTHESIS_ROLE, ArtefactMetadata
from tgan_deploy.errors import TganError
from tgan_deploy.run_layout import CHECKPOINT_DIR, is_run_dir
from tgan_deploy.runtime.errors import ModelLoadError

ENGINE_SUFFIXES = (".plan", ".engine")
# model.json "files" roles the runtime looks for (the exporter writes them); a directory scan is the fallback.
ONNX_ROLE, ENGINE_ROLE = "onnx", "tensorrt"
GENERATOR_ROLE = "generator"  # a style export's name for generator.onnx's role (same meaning as "onnx")
# A style model's two graphs: ONNX roles "mapping"/"synthesis", TensorRT engines "<role>_tensorrt".
STYLE_ROLES = (MAPPING_ROLE, SYNTHESIS_ROLE)


@dataclasses.dataclass
class ModelLocation:
    path: Path
    onnx: Path | None = None
    engine: Path | None = None
    checkpoint: Path | None = None
    metadata: ArtefactMetadata | None = None  # None: read it from the ONNX file's metadata_props
    style_onnx: tuple[Path, Path] | None = None  # a style export's (mapping.onnx, synthesis.onnx)
    style_engines: tuple[Path, Path] | None = None  # their TensorRT engines, where built

    @property
    def is_export(self) -> bool:
        return self.onnx is not None or self.engine is not None


def locate_model(path: str | Path) -> ModelLocation:
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model {p} does not exist: pass an export directory, a .onnx/.plan file or a checkpoint")
    if p.is_dir():
        if (p / MODEL_JSON).is_file():
            return _export_dir(p)
        if is_run_dir(p):
            return ModelLocation(p, checkpoint=p)
        raise ModelLoadError(f"{p} is neither an export directory (no {MODEL_JSON}) nor a run directory "
                             f"(no {CHECKPOINT_DIR}/): pass the folder tgan-export or tgan-train wrote")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return ModelLocation(p, onnx=p, metadata=_metadata_beside(p))
    if suffix in ENGINE_SUFFIXES:
        meta = _metadata_beside(p)
        if meta is None:
            raise ModelLoadError(f"TensorRT engine {p} has no {MODEL_JSON} beside it: keep the engine in the "
                                 "directory tgan-export wrote, or pass that directory")
        return ModelLocation(p, engine=p, metadata=meta)
    if suffix == ".pt":
        return ModelLocation(p, checkpoint=p)
    raise ModelLoadError(f"{p} is not a model file the runtime knows (.onnx, .plan, .engine, .pt) "
                         "nor an export or run directory")


def _metadata_beside(file: Path) -> ArtefactMetadata | None:
    meta_file = file.parent / MODEL_JSON
    return _read_metadata(meta_file) if meta_file.is_file() else None


def _read_metadata(meta_file: Path) -> ArtefactMetadata:
    try:
        return ArtefactMetadata.read_json(meta_file)
    except TganError as exc:
        raise ModelLoadError(str(exc)) from exc
    except (TypeError, AttributeError) as exc:  # valid JSON of the wrong shape
        raise ModelLoadError(f"{meta_file} is not valid artefact metadata ({exc}): re-run tgan-export") from exc


def _export_dir(folder: Path) -> ModelLocation:
    meta = _read_metadata(folder / MODEL_JSON)
    files = {role: folder / name for role, name in meta.files.items()}
    onnx = files.get(ONNX_ROLE) or files.get(GENERATOR_ROLE)
    if onnx is None:  # no role recorded: the fp32 ONNX file is the one without ".fp16" in its name
        found = sorted(f for f in folder.glob("*.onnx") if ".fp16" not in f.name)
        onnx = found[0] if found else None
    engine = files.get(ENGINE_ROLE)
    if engine is None:
        engines = sorted(f for f in folder.iterdir() if f.suffix in ENGINE_SUFFIXES)
        engine = engines[0] if engines else None
    if onnx is not None and not onnx.is_file():
        raise ModelLoadError(f"{folder}/{MODEL_JSON} names {onnx.name}, which is missing: re-run tgan-export")
    if engine is not None and not engine.is_file():
        engine = None  # an optional engine that was not built; the ONNX file still serves
    if onnx is None and engine is None:
        raise ModelLoadError(f"export directory {folder} holds no .onnx file or TensorRT engine: re-run tgan-export")
    location = ModelLocation(folder, onnx=onnx, engine=engine, metadata=meta)
    if meta.w_space:
        location.style_onnx = _style_pair(folder, [files.get(role) for role in STYLE_ROLES], required=True)
        location.style_engines = _style_pair(folder, [files.get(f"{role}_tensorrt") for role in STYLE_ROLES])
    return location


def _style_pair(folder: Path, pair: list[Path | None], required: bool = False) -> tuple[Path, Path] | None:
    """(mapping, synthesis) files of a style export; a missing ONNX pair is an error, a missing engine pair not."""
    if all(f is not None and f.is_file() for f in pair):
        return (pair[0], pair[1])  # type: ignore[return-value]
    if required:
        raise ModelLoadError(f"{folder}/{MODEL_JSON} describes a style model but its mapping and synthesis graphs "
                             f"(files roles {', '.join(STYLE_ROLES)}) are missing: re-run tgan-export")
    return None
