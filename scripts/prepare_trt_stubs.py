"""Make the `tensorrt-stubs` package usable by mypy; writes them to `.typings/`.

`tensorrt-stubs` (TensorRT 10.13 API) has two problems as installed:
  - it ships `tensorrt/` and `tensorrt_bindings/` with `.pyi` files but no `py.typed` marker or
    `-stubs` suffix, so mypy silently treats `import tensorrt` as untyped (Any everywhere);
  - a few signatures are not valid Python: the keyword `in` as a parameter name, a parameter without a
    default after one with a default; and `tensorrt/__init__.pyi` imports `tensorrt_libs`, which has none.
This copies the stubs into `.typings/` (mypy_path in pyproject.toml) as a stub-only tree with the
signatures repaired, so `mypy tgan_deploy` really checks our TensorRT code against the 10.13 API.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / ".typings"
KEYWORD_PARAM = re.compile(r"\b(in|lambda|from|is)(\s*:)")
DEF_LINE = re.compile(r"^(\s*def \w+\()(.*)(\)\s*->.*:\s*)$")


def _split_params(params: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return parts


def _repair_line(line: str) -> str:
    line = KEYWORD_PARAM.sub(r"\1_\2", line)
    if line.lstrip().startswith("import tensorrt_libs"):
        return ""
    match = DEF_LINE.match(line)
    if not match:
        return line
    params, seen_default = _split_params(match.group(2)), False
    for i, param in enumerate(params):
        bare = param.strip()
        if "=" in bare.split(":", 1)[-1] or bare.startswith("*"):
            seen_default = seen_default or "=" in bare
        elif seen_default and bare:
            params[i] = param + " = ..."
    return match.group(1) + ",".join(params) + match.group(3)


def main() -> int:
    try:
        dist = importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        print("tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs", file=sys.stderr)
        return 1
    stubs = [f for f in dist.files or [] if str(f).endswith(".pyi")]
    for rel in stubs:
        text = Path(str(dist.locate_file(rel))).read_text()
        target = OUT / str(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(_repair_line(line) for line in text.splitlines()) + "\n")
    print(f"wrote {len(stubs)} TensorRT stub files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
