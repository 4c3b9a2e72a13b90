"""Copy the tensorrt-stubs package (TensorRT 10.13 API) to .typings/ so `mypy tgan_deploy` checks our TensorRT code.

Why: tensorrt-stubs installs `tensorrt/__init__.pyi` and `tensorrt_bindings/*.pyi` straight into
site-packages without PEP 561's `py.typed` marker, so mypy ignores them and (ignore_missing_imports)
treats `tensorrt` as Any: nothing would be checked. Its generated stubs also use the keyword `in` as a
parameter name and put defaulted parameters before required ones (syntax errors for mypy); the copy
renames `in` to `in_` and gives such required parameters a `= ...` default. pyproject's [tool.mypy]
mypy_path points at .typings/. `make install` runs this; tests/test_export_tensorrt_api.py proves that
mypy really sees the stubs (a planted API misuse must fail). Idempotent; a no-op without the stubs.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

TYPINGS = Path(__file__).resolve().parent.parent / ".typings"
KEYWORD_PARAM = re.compile(r"(?<=[(,] )in(?=: )")
SIGNATURE = re.compile(r"^(\s*def \w+\()(.*)(\)\s*->.*:\s*)$")


def _split_params(params: str) -> list[str]:
    """Split a parameter list at top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return [p.strip() for p in parts if p.strip()]


def _fix_defaults(line: str) -> str:
    """`def f(a: int = 1, b: int)` -> `def f(a: int = 1, b: int = ...)`: valid in a stub, same meaning for mypy."""
    match = SIGNATURE.match(line)
    if match is None:
        return line
    params, seen_default, fixed = _split_params(match.group(2)), False, []
    for param in params:
        if param.startswith("*"):
            seen_default = False  # keyword-only parameters may follow without defaults
        elif "=" in param:
            seen_default = True
        elif seen_default:
            param += " = ..."
        fixed.append(param)
    return match.group(1) + ", ".join(fixed) + match.group(3)


def clean(text: str) -> str:
    return "\n".join(_fix_defaults(KEYWORD_PARAM.sub("in_", line)) for line in text.splitlines()) + "\n"


def main() -> int:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        print("tensorrt-stubs not installed: nothing to copy (pip install --no-deps tensorrt-stubs)")
        return 0
    site = Path(spec.origin).parent.parent
    for package in ("tensorrt", "tensorrt_bindings"):
        for stub in sorted((site / package).glob("*.pyi")):
            target = TYPINGS / package / stub.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = clean(stub.read_text())
            ast.parse(text, str(stub))  # the copy must be valid Python syntax
            target.write_text(text)
    print(f"tensorrt stubs copied to {TYPINGS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
