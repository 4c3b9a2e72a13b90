"""PyTorch backend: serves a checkpoint or run directory directly (no export), eager or with CUDA graphs.

torch is imported here only, when this backend is opened. On a GPU, `cuda_graphs=True` captures one
CUDA graph per batch size on first use (static input/output buffers, replayed afterwards), which
removes the per-layer launch overhead that dominates small batches.

A style checkpoint (an imported StyleGAN2/3: docs/stylegan.md) builds a generator module with the style
interface (`mapping(z, label) -> ws`, `synthesis(ws) -> image`, buffer `w_avg`, attributes `w_dim`,
`num_ws`); this backend then also offers `map` and `synthesize`, and the Sampler applies the w controls
between them exactly as for an export. It is duck-typed: no model class is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tgan_deploy._extras import require
from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.checkpoint_metadata import metadata_from_checkpoint
from tgan_deploy.errors import MissingExtraError, TganError
from tgan_deploy.runtime.backends import cuda_device_count
from tgan_deploy.runtime.errors import BackendUnavailableError


class TorchBackend:
    name = "torch"
    output_dtype = "float32"

    def __init__(self, checkpoint: Path, device: str = "cpu", device_index: int = 0, max_batch: int = 64,
                 threads: int | None = None, weights: str = "ema", cuda_graphs: bool = False) -> None:
        try:
            torch = require("torch", "the torch backend")
        except MissingExtraError as exc:
            raise BackendUnavailableError(str(exc), extra=exc.extra) from exc
        from tgan_deploy.checkpoint import load_generator

        self._torch = torch
        if device == "cuda" and (not torch.cuda.is_available() or cuda_device_count() == 0):
            raise BackendUnavailableError("the torch backend cannot use CUDA here (no GPU or a CPU-only torch): "
                                          "install a CUDA build of torch, or use --device cpu")
        if cuda_graphs and device != "cuda":
            raise TganError("CUDA graphs need --device cuda")
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        self.device = torch.device(f"cuda:{device_index}" if device == "cuda" else "cpu")
        generator, _, state = load_generator(checkpoint, weights=weights, map_location=self.device)
        # the metadata an export of this checkpoint would carry, with float32 output
        metadata = metadata_from_checkpoint(state, weights=weights, files={"checkpoint": Path(state["path"]).name},
                                            generator=generator)
        self._setup(generator, metadata, max_batch, cuda_graphs)

    @classmethod
    def from_generator(cls, generator: Any, metadata: ArtefactMetadata, device: str = "cpu",
                       max_batch: int = 64) -> TorchBackend:
        """A backend on a generator module already built (e.g. a test's stand-in with the style interface)."""
        backend = cls.__new__(cls)
        backend._torch = require("torch", "the torch backend")
        backend.device = backend._torch.device(device)
        backend._setup(generator, metadata, max_batch, cuda_graphs=False)
        return backend

    def _setup(self, generator: Any, metadata: ArtefactMetadata, max_batch: int, cuda_graphs: bool) -> None:
        if cuda_graphs and metadata.w_space:
            raise TganError("CUDA graphs capture our own models' one-graph generator; a style model runs its "
                            "mapping and synthesis eagerly: drop --cuda-graphs")
        self.generator = generator.to(self.device).eval()
        self.metadata = metadata
        self.providers = [str(self.device) + (" (CUDA graphs)" if cuda_graphs else "")]
        self.max_batch = max_batch
        self.cuda_graphs = cuda_graphs
        # batch -> (graph, static inputs (z, and label for a conditional model), static out)
        self._graphs: dict[int, tuple[Any, list[Any], Any]] = {}

    def _graph(self, batch: int) -> tuple[Any, list[Any], Any]:
        if batch not in self._graphs:
            torch = self._torch
            static = [torch.zeros(batch, self.metadata.latent_dim, device=self.device)]
            if self.metadata.conditional:
                static.append(torch.zeros(batch, dtype=torch.int64, device=self.device))
            with torch.inference_mode():
                # Warm-up on a side stream before capture, as torch.cuda.graphs documents.
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(3):
                        self.generator(*static)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self.generator(*static)
            self._graphs[batch] = (graph, static, static_out)
        return self._graphs[batch]

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        torch = self._torch
        inputs = [torch.from_numpy(np.ascontiguousarray(z))]
        if labels is not None:
            inputs.append(torch.from_numpy(np.ascontiguousarray(labels, np.int64)))
        with torch.inference_mode():
            if self.cuda_graphs:
                graph, static, static_out = self._graph(z.shape[0])
                for buffer, value in zip(static, inputs, strict=True):
                    buffer.copy_(value)
                graph.replay()
                out = static_out
            else:
                out = self.generator(*(t.to(self.device) for t in inputs))
            result: np.ndarray = out.float().cpu().numpy()  # .cpu() synchronises with the GPU work
        return result

    def map(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Style generators: mapping(z, label) -> untruncated ws float32 [b, num_ws, w_dim]."""
        torch = self._torch
        label = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, np.int64)).to(self.device)
        with torch.inference_mode():
            ws = self.generator.mapping(torch.from_numpy(np.ascontiguousarray(z)).to(self.device), label)
            result: np.ndarray = ws.float().cpu().numpy()
        return result

    def synthesize(self, ws: np.ndarray) -> np.ndarray:
        """Style generators: synthesis(ws) -> image float32 [b, C, H, W]."""
        torch = self._torch
        with torch.inference_mode():
            out = self.generator.synthesis(torch.from_numpy(np.ascontiguousarray(ws)).to(self.device))
            result: np.ndarray = out.float().cpu().numpy()
        return result

    def close(self) -> None:
        self._graphs.clear()
