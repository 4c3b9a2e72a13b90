"""tgan-deploy: train T-GANs, export their generators, sample them fast in production.

Sub-packages (data flows one way, left to right):
    train/  -> checkpoint -> export/ -> artefact (ONNX, TensorRT, model.json) -> runtime/ -> images
`runtime` needs only numpy and onnxruntime; `train` and `export` need the `[train]` extra (torch).
"""

__version__ = "0.1.0"
