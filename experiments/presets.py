"""Do the 2-D presets learn with nothing else given? The real commands a new user types, scored by tgan-eval.

For each data set: `tgan-train --data builtin:NAME --steps N --out RUN --set run.threads=1
--set run.keep_last=1000`, then `tgan-eval CHECKPOINT --json ...` on every checkpoint (one each 1,000
iterations, the default run.checkpoint_every). run.threads only pins the CPU threads (this machine is shared)
and run.keep_last only keeps every checkpoint for the curve; neither changes what is trained. One seed (0,
the default). The chance level is the HQ % of points spread uniformly over the square that holds the
mixture's centres with a margin of 10 std: what a generator that has learnt nothing but the range scores.

    python experiments/presets.py                            # ring8 3,000 and grid25 20,000 iterations
    python experiments/presets.py --data ring8 --steps 500   # a quick look (results under OUT/quick)

Results: OUT/presets/{ring8,grid25}.json (final scores, curve, commands, CPU seconds) and OUT/presets/presets.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import DEFAULT_OUT, ROOT, RUNS_DIR, machine

STEPS = {"ring8": 3000, "grid25": 20000}
CHANCE_SAMPLES = 100_000


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tgan_deploy", *args]


def run(cmd: list[str], log: Path) -> None:
    """Run from the repository root (paths in the commands are relative to it)."""
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")


def chance_hq(name: str) -> float:
    import numpy as np

    from tgan_deploy.data.toy import MIXTURES
    from tgan_deploy.metrics.toy2d import mode_metrics

    mixture = MIXTURES[name]
    lo, hi = mixture.centres.min() - 10 * mixture.std, mixture.centres.max() + 10 * mixture.std
    points = np.random.default_rng(0).uniform(lo, hi, size=(CHANCE_SAMPLES, 2))
    return mode_metrics(points, mixture).hq_percent


def measure(name: str, steps: int, out: Path) -> dict[str, Any]:
    from tgan_deploy.run_layout import list_checkpoints

    run_dir = RUNS_DIR / "presets" / name
    log = RUNS_DIR / "presets" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    train = command("train", "--data", f"builtin:{name}", "--steps", str(steps),
                    "--out", str(run_dir.relative_to(ROOT)), "--force", "--set", "run.threads=1",
                    "--set", "run.keep_last=1000")
    cpu, wall = children_cpu_s(), time.perf_counter()
    run(train, log)
    cpu, wall = children_cpu_s() - cpu, time.perf_counter() - wall
    preset_line = next(line for line in log.read_text().splitlines() if " preset: " in line)
    curve = []
    for ckpt in list_checkpoints(run_dir):
        scores = out / f".{name}-eval.json"
        run(command("eval", str(ckpt), "--json", str(scores)), log)
        result = json.loads(scores.read_text())
        scores.unlink()
        curve.append({"step": result["checkpoint"]["step"], **result["metrics"],
                      "per_mode_counts": result["details"]["per_mode_counts"]})
    return {"data": f"builtin:{name}", "steps": steps, "seed": 0, "train_command": "tgan-" + " ".join(train[3:]),
            "eval_command": "eval CHECKPOINT --json FILE (defaults: 2,500 samples, seeds 0..2499)",
            "preset_line": preset_line, "train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1),
            "chance_hq_percent": round(chance_hq(name), 3), "final": curve[-1], "curve": curve,
            "machine": machine()}


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| data | iterations | modes | HQ % | chance HQ % | reverse KL | train CPU s |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        f = r["final"]
        rows.append(f"| {r['data']} | {r['steps']} | {f['modes']:.0f} / {len(f['per_mode_counts'])} | "
                    f"{f['hq_percent']:.1f} | {r['chance_hq_percent']:.2f} | {f['reverse_kl']:.2f} | "
                    f"{r['train_cpu_s']:.0f} |")
    curves = []
    for r in results:
        points = ", ".join(f"{c['step']}: {c['modes']:.0f} / {c['hq_percent']:.1f} %" for c in r["curve"])
        curves.append(f"- {r['data']} (modes / HQ % by iteration): {points}")
    return "\n".join(["# 2-D presets: `tgan-train --data builtin:NAME --steps N`, nothing else", "",
                      "Made by `experiments/presets.py` (one seed, 0; `tgan-eval` defaults: 2,500 samples, "
                      "seeds 0..2499, the run's raw generator since the preset keeps no EMA).", "",
                      *rows, "", *curves, "", *(f"- `{r['train_command']}` printed: `{r['preset_line']}`"
                                                for r in results), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(STEPS), action="append", help="data set(s); default: both")
    parser.add_argument("--steps", type=int, default=None, help="iterations (default: ring8 3000, grid25 20000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    quick = args.steps is not None
    out = (args.out / "quick" if quick else args.out) / "presets"
    out.mkdir(parents=True, exist_ok=True)
    from tgan_deploy.io import write_json_atomic, write_text_atomic

    for name in args.data or sorted(STEPS, reverse=True):
        result = measure(name, args.steps or STEPS[name], out)
        write_json_atomic(out / f"{name}.json", result)
        print(f"{name}: {result['final']['modes']:.0f} modes, {result['final']['hq_percent']:.1f} % HQ "
              f"(chance {result['chance_hq_percent']:.2f} %), {result['train_cpu_s']:.0f} CPU s", flush=True)
    done = [json.loads((out / f"{n}.json").read_text()) for n in sorted(STEPS, reverse=True)
            if (out / f"{n}.json").exists()]
    write_text_atomic(out / "presets.md", table(done))


if __name__ == "__main__":
    main()
