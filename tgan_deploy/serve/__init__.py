"""`tgan-serve`: the sampling service for pipelines that speak HTTP (docs/serve.md).

Open Inference Protocol (KServe v2, what Triton speaks) under /v2, seed-native image endpoints under /v1,
a web page at /, Prometheus metrics at /metrics. Every request goes through a `BatchingSampler`.
Needs the `serve` extra (FastAPI, uvicorn, prometheus-client); importing this package alone imports none
of them.
"""
