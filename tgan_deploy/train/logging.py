"""What a run reports: a tqdm progress bar, one summary line per log interval, RUN_DIR/metrics.jsonl
(always; one JSON object per line) and TensorBoard scalars when the tensorboard package is installed.

Only rank 0 logs. metrics.jsonl lines are either measurements {"step": s, "d_loss": ..., ...} or
events {"step": s, "event": "rollback", "message": ...}. On --resume, lines after the checkpoint's
step are dropped first, so a resumed run's file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tgan_deploy.io import write_text_atomic
from tgan_deploy.run_layout import METRICS_FILE

SUMMARY_KEYS = (("d_loss", "d"), ("g_loss", "g"), ("d_grad_norm", "|∇d|"), ("g_grad_norm", "|∇g|"))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete line of RUN_DIR/metrics.jsonl (a line cut short by a crash is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Keep only records up to `last_step` (called on resume, before logging anything new)."""
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= last_step]
    write_text_atomic(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))


class RunLogger:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int, *, enabled: bool,
                 tensorboard: bool) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self._file = None
        self._bar = None
        self._tb = None
        self._last_time = time.perf_counter()
        self._last_step = start_step
        self._postfix: dict[str, str] = {}  # the latest losses, then the latest evaluation, in the bar
        self._headline: dict[str, str] = {}
        if not enabled:
            return
        from tqdm.auto import tqdm

        self._file = open(run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="it", dynamic_ncols=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional (the [tensorboard] extra)
                self._tb = None

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One measurement record: to metrics.jsonl, TensorBoard, and one summary line."""
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        record = {"step": step, **metrics, "it_per_s": round(rate, 3)}
        self._write(record)
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)
        parts = [f"{short} {metrics[key]:.4g}" for key, short in SUMMARY_KEYS if key in metrics]
        self.echo(f"step {step:>8d} | " + " | ".join(parts) + f" | {rate:.2f} it/s")
        self._postfix = {short: f"{metrics[key]:.3g}" for key, short in SUMMARY_KEYS[:2]
                         if key in metrics and math.isfinite(metrics[key])}
        if self._bar is not None:
            self._bar.set_postfix(self._postfix | self._headline)

    def record(self, step: int, metrics: dict[str, float], headline: str = "") -> None:
        """Evaluation metrics: to metrics.jsonl and TensorBoard, one line; no step-rate bookkeeping.
        `headline` (one of the keys) stays in the progress bar until the next evaluation."""
        if not self.enabled:
            return
        self._write({"step": step, **metrics})
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)
        self.echo(f"step {step:>8d} | " + " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if headline in metrics:
            self._headline = {headline.removeprefix("eval/"): f"{metrics[headline]:.4g}"}
            if self._bar is not None:
                self._bar.set_postfix(self._postfix | self._headline)

    def event(self, step: int, kind: str, message: str) -> None:
        """Something a person should know about (divergence, rollback, interrupt)."""
        if not self.enabled:
            return
        self._write({"step": step, "event": kind, "message": message})
        self.echo(f"step {step:>8d} | {kind}: {message}")

    def echo(self, line: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
