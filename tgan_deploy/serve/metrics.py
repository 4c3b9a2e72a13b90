"""Prometheus metrics of one server: requests by route and status, latency, batch sizes, queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tgan_serve_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("tgan_serve_request_seconds", "HTTP request latency, by route template",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("tgan_serve_images", "Images generated, by model", ["model"], registry=self.registry)
        self.batch_size = Histogram("tgan_serve_batch_images", "Images per batch run by the batcher, by model",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.rate_limited = Counter("tgan_serve_rate_limited", "Requests refused with 429 by --rate-limit",
                                    registry=self.registry)
        self.queue_depth = Gauge("tgan_serve_queue_depth", "Requests waiting in the batcher, by model", ["model"],
                                 registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, model: str, images: int) -> None:
        self.batch_size.labels(model).observe(images)
        self.images.labels(model).inc(images)

    def track_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model).set_function(depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
