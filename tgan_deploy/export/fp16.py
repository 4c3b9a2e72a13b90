"""fp32 ONNX -> fp16 ONNX with fp32 inputs/outputs, keeping in fp32 the layers that measurably need it.

The converter is onnxconverter-common's `convert_float_to_float16` (keep_io_types=True; it keeps Resize
in fp32 and clips constants to +-1e4). Which nodes stay fp32 is decided by measurement on calibration
latents (`runtime.latents`, seeds 0..63), not by a fixed list:

Class-conditional graphs are calibrated with every class: latent seed i gets label i mod num_classes.

1. range check: run the fp32 graph with every intermediate float tensor exposed; a node whose input or
   output magnitude exceeds FP16_SAFE_MAX (a quarter of fp16's max 65504, headroom for latents not seen here)
   or that reads a constant beyond the converter's +-1e4 clip is kept in fp32;
2. error check: convert, run the candidate, compare its output with fp32 (PSNR). While it misses the
   target, compare every shared intermediate tensor and try the node with the largest relative error in
   fp32, converting again (at most MAX_ROUNDS times); it stays fp32 only if that raised the output's PSNR
   (measured on StyleGAN2: fp16's rounding error is spread over every layer, and no single node, module or the
   whole mapping network in fp32 gains 0.2 dB, so blocking more would only cost speed).

Each reason names the layer (the torch module the node came from, recorded by the exporter) and the op, e.g.
`style.synthesis.b16.conv1 MatMul`: the sum of squares of StyleGAN2's demodulation grows with the layer width
and overflows fp16 at paper widths (512 channels), the solid-colour images of NVIDIA/TensorRT#3257.

The decisions and the numbers behind them are returned (written to fp16.json by the exporter).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from tgan_deploy._extras import require
from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME
from tgan_deploy.runtime.labels import seed_labels
from tgan_deploy.runtime.latents import latents

FP16_MAX = 65504.0
FP16_SAFE_MAX = FP16_MAX / 4
CONSTANT_CLIP = 1e4  # convert_float_to_float16's default clip for constants
TARGET_PSNR_DB = 45.0  # calibration target: above the parity tolerance (40 dB) so unseen latents keep a margin
MAX_ROUNDS = 8
CALIBRATION_SEEDS = range(64)


@dataclasses.dataclass
class Fp16Result:
    blocked: dict[str, str]  # node name -> why it stays fp32
    psnr_db: float  # of the final fp16 model vs fp32 on the calibration latents
    peak_activation: float  # largest |activation| of the fp32 graph on the calibration latents
    rounds: int
    conditional: bool = False  # calibrated with labels

    def to_dict(self) -> dict[str, Any]:
        return {"converter": "onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)",
                "calibration": f"latents(range({len(CALIBRATION_SEEDS)}), latent_dim)"
                               + (", labels seed % num_classes" if self.conditional else ""),
                "fp16_safe_max": FP16_SAFE_MAX, "target_psnr_db": TARGET_PSNR_DB,
                **dataclasses.asdict(self)}


def feeds(z: np.ndarray, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """ONNX Runtime's inputs of an artefact graph."""
    return {INPUT_NAME: z} if labels is None else {INPUT_NAME: z, LABEL_NAME: labels}


def _name_nodes(model: onnx.ModelProto) -> None:
    """node_block_list matches node names: make sure every node has a unique one."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def with_all_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy whose graph outputs also include every intermediate float tensor (typed by shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    existing = {o.name for o in inferred.graph.output}
    produced = {name for node in inferred.graph.node for name in node.output}  # value_info may hold stale names
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    extra = [v for v in inferred.graph.value_info
             if v.type.tensor_type.elem_type in floats and v.name in produced and v.name not in existing]
    inferred.graph.output.extend(extra)
    return inferred, [o.name for o in inferred.graph.output]


def _run_all(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    exposed, names = with_all_outputs(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, inputs), strict=True))


def _psnr(ref: np.ndarray, out: np.ndarray, peak: float) -> float:
    out64 = out.astype(np.float64)
    if not np.isfinite(out64).all():
        return 0.0
    mse = float(np.mean((out64 - ref.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def layer_of(node: onnx.NodeProto) -> str:
    """`module.path Op` of a node: the torch module it was exported from (torch.onnx's name_scopes metadata, e.g.
    `style.synthesis.b16.conv1 MatMul`), else its op type."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
    parts = [part.strip(" '\"") for part in scopes.strip("[]").split(",")][:-1]
    # nested scopes repeat their parent's path ("style.synthesis", "style.synthesis.b16", ...): the last is whole
    module = next((part for part in reversed(parts) if part), "")
    return f"{module} {node.op_type}".strip()


def _range_blocks(model: onnx.ModelProto, acts: dict[str, np.ndarray]) -> dict[str, str]:
    big_constants = {init.name for init in model.graph.initializer
                     if np.issubdtype(numpy_helper.to_array(init).dtype, np.floating)
                     and np.abs(numpy_helper.to_array(init)).max(initial=0.0) > CONSTANT_CLIP}
    blocked: dict[str, str] = {}
    for node in model.graph.node:
        # a node reading a tensor beyond fp16's range must stay fp32 too: its input would be cast to fp16 (inf)
        peak = max((float(np.abs(acts[t]).max(initial=0.0)) for t in [*node.input, *node.output] if t in acts
                    and np.issubdtype(acts[t].dtype, np.floating)), default=0.0)
        if peak > FP16_SAFE_MAX:
            blocked[node.name] = f"{layer_of(node)}: input/output magnitude {peak:.3g} > {FP16_SAFE_MAX:.3g}"
        elif big := sorted(set(node.input) & big_constants):
            blocked[node.name] = f"{layer_of(node)}: constant {big[0]} beyond the converter's +-{CONSTANT_CLIP:g} clip"
    return blocked


def calibration_feeds(latent_dim: int, num_classes: int = 0) -> dict[str, np.ndarray]:
    """The generator's calibration inputs: latents of CALIBRATION_SEEDS (labels cycled through every class)."""
    return feeds(latents(CALIBRATION_SEEDS, latent_dim), seed_labels(CALIBRATION_SEEDS, num_classes))


def convert_fp16(src: Path, dst: Path, *, latent_dim: int, peak: float | None, num_classes: int = 0,
                 calibration: dict[str, np.ndarray] | None = None) -> Fp16Result:
    """Write the fp16 model of `src` to `dst`; `peak`: the output's PSNR peak (2 for [-1, 1] images; None:
    the fp32 output's value range, for 2-D points and ws); `num_classes` > 0 for class-conditional graphs;
    `calibration`: the graph's inputs by name when they are not the generator's (a synthesis graph's ws)."""
    float16 = require("onnxconverter_common.float16", "fp16 export")
    model = onnx.load(str(src))
    _name_nodes(model)
    if calibration is None:
        calibration = calibration_feeds(latent_dim, num_classes)
    acts32 = _run_all(model, calibration)
    out_name = model.graph.output[0].name
    if peak is None:
        peak = float(np.ptp(acts32[out_name])) or 1.0
    blocked = _range_blocks(model, acts32)
    peak_activation = max(float(np.abs(a).max(initial=0.0)) for a in acts32.values()
                          if np.issubdtype(a.dtype, np.floating))
    rounds = 0
    candidate = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=sorted(blocked) or None)
    acts16 = _run_all(candidate, calibration)
    psnr = _psnr(acts32[out_name], acts16[out_name], peak)
    while psnr < TARGET_PSNR_DB and rounds < MAX_ROUNDS:
        rounds += 1
        worst = _worst_node(model, acts32, acts16, blocked)
        if worst is None:
            break
        node_name, rel_err = worst
        trial = float16.convert_float_to_float16(model, keep_io_types=True,
                                                 node_block_list=sorted({*blocked, node_name}))
        trial_acts = _run_all(trial, calibration)
        trial_psnr = _psnr(acts32[out_name], trial_acts[out_name], peak)
        if trial_psnr <= psnr:  # keeping it in fp32 does not help: the error is spread, stop here
            break
        node = next(n for n in model.graph.node if n.name == node_name)
        blocked[node_name] = (f"{layer_of(node)}: relative error {rel_err:.3g} in fp16 (largest per-layer error, "
                              f"round {rounds}; output PSNR {psnr:.1f} -> {trial_psnr:.1f} dB in fp32)")
        candidate, acts16, psnr = trial, trial_acts, trial_psnr
    onnx.save(candidate, str(dst))
    return Fp16Result(blocked, psnr, peak_activation, rounds, conditional=num_classes > 0)


def _worst_node(model: onnx.ModelProto, acts32: dict[str, np.ndarray], acts16: dict[str, np.ndarray],
                blocked: dict[str, str]) -> tuple[str, float] | None:
    """The not-yet-blocked node whose output differs most (relative max error) between fp32 and fp16."""
    worst: tuple[str, float] | None = None
    for node in model.graph.node:
        if node.name in blocked:
            continue
        for out in node.output:
            a, b = acts32.get(out), acts16.get(out)
            if a is None or b is None or a.shape != b.shape or not np.issubdtype(a.dtype, np.floating):
                continue
            b64 = b.astype(np.float64)
            scale = max(float(np.abs(a).max(initial=0.0)), 1e-6)
            err = math.inf if not np.isfinite(b64).all() else float(np.abs(b64 - a).max(initial=0.0)) / scale
            if worst is None or err > worst[1]:
                worst = (node.name, err)
    return worst
