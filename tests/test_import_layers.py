"""The package's import layers: every import goes in a direction `LAYERS` allows, torch stays where it may, no cycles.

`LAYERS` is the one statement of the architecture's import directions (docs/architecture.md mirrors it, and a test
below keeps the two equal). The import graph is read from the source (ast), so an import inside a function counts
as much as one at the top: a lazy import still ties two layers together (config -> objectives -> models -> config
was one). Torch is the exception where laziness matters: a torch-free layer may reach torch only from inside a
function, so importing it never loads torch (the runtime, service and bulk writers install without it).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _subprocess import REPO_ROOT

PACKAGE = REPO_ROOT / "tgan_deploy"
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "architecture.md"

# torch rule of a layer: "never" (no `import torch` anywhere in its source, and none reached at import time),
# "lazy" (torch only inside functions: importing the layer never loads torch), "yes" (a torch layer).
NEVER, LAZY, YES = "never", "lazy", "yes"


@dataclasses.dataclass(frozen=True)
class Layer:
    modules: tuple[str, ...]  # under tgan_deploy: "io" is that module, "runtime.*" the package and all below it
    may_import: tuple[str, ...]  # the layers below it that it may import (its own modules: always)
    torch: str


# The architecture, from the bottom layer up: a layer names only layers listed before it (checked below), so the
# layers form no cycle. Each allowed direction is named here once; a module belongs to the layer with the most
# specific pattern naming it ("runtime.bulk.*" before "runtime.*").
LAYERS: dict[str, Layer] = {
    # contracts and utilities every command shares (cli: the click helpers; it starts commands by name, not import)
    "base": Layer(("__init__", "__main__", "errors", "_extras", "io", "artefact", "cli", "run_layout", "cache"), (),
                  NEVER),
    # the config, and what a checkpoint's config says about its generator (artefact metadata, which weights sample)
    "config": Layer(("config", "checkpoint_metadata"), ("base",), NEVER),
    "ops": Layer(("ops.*",), ("base",), YES),
    "models": Layer(("models.*",), ("base", "config", "ops"), YES),
    "checkpoint": Layer(("checkpoint",), ("base", "config", "models"), YES),  # the one safe checkpoint loader
    # the sampler: seeds -> images; its torch backend loads a checkpoint through the one loader, lazily
    "runtime": Layer(("runtime.*",), ("base", "config", "checkpoint"), LAZY),
    # bulk writers and Ray Data sit on the runtime's public API
    "runtime.bulk": Layer(("runtime.bulk.*",), ("base", "runtime"), NEVER),
    "runtime.raydata": Layer(("runtime.raydata",), ("base", "runtime", "runtime.bulk"), NEVER),
    "runtime.cli": Layer(("runtime.cli",), ("base", "runtime", "runtime.bulk"), NEVER),  # tgan-sample, tgan-bench
    "serve": Layer(("serve.*",), ("base", "runtime"), NEVER),
    "data": Layer(("data.*",), ("base", "config"), YES),
    "objectives": Layer(("objectives",), ("base", "config", "models"), YES),
    "foreign": Layer(("foreign.*",), ("base", "config", "models", "checkpoint"), YES),  # readers of foreign files
    "metrics": Layer(("metrics.*",), ("base", "config", "data", "checkpoint", "runtime"), YES),
    "export": Layer(("export.*",), ("base", "config", "models", "checkpoint", "foreign", "runtime"), YES),
    "train": Layer(("train.*",), ("base", "config", "data", "models", "objectives", "checkpoint", "foreign",
                                  "metrics", "runtime"), YES),
    "demo": Layer(("demo",), ("base", "config", "train", "export", "runtime"), YES),
}


@dataclasses.dataclass(frozen=True)
class Import:
    target: str  # a package module, or a top-level third-party name ("torch")
    line: int
    lazy: bool  # inside a function (or under `if TYPE_CHECKING:`): does not run when its module is imported


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    """tgan_deploy.x.y -> its file, for every module of the package at `root`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _nodes(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """(node, lazy) for `node` and everything under it; lazy: it does not run when the module is imported (inside a
    function, or under `if TYPE_CHECKING:`)."""
    yield node, lazy
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        for child in node.body:
            yield from _nodes(child, True)
        for child in node.orelse:
            yield from _nodes(child, lazy)
        return
    lazy = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    for child in ast.iter_child_nodes(node):
        yield from _nodes(child, lazy)


@functools.cache
def _import_nodes(source: str) -> tuple[tuple[ast.AST, bool], ...]:
    """The import statements and import_module calls of a source text, with `lazy` (cached by text: the copies of
    the package below re-parse only the files they change)."""
    return tuple((node, lazy) for node, lazy in _nodes(ast.parse(source))
                 if isinstance(node, ast.Import | ast.ImportFrom | ast.Call))


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import in `name`'s source: package modules (`from pkg import sub` -> pkg.sub) and third-party roots."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = name.partition(".")[0]
    found: list[Import] = []

    def add(target: str, node: ast.AST, lazy: bool) -> None:
        if target in modules or target.partition(".")[0] != root:
            found.append(Import(target if target in modules else target.partition(".")[0],
                                node.lineno, lazy))  # type: ignore[attr-defined]

    for node, lazy in _import_nodes(path.read_text()):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_longest_module(alias.name, modules), node, lazy)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node, lazy)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) ==
              "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            add(str(node.args[0].value), node, lazy)
    return [i for i in found if i.target != name]


def _longest_module(dotted: str, modules: dict[str, Path]) -> str:
    """`import a.b.c` binds a but loads a.b.c: the deepest package module it names."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return dotted


@dataclasses.dataclass(frozen=True)
class Graph:
    root: Path  # the package directory
    modules: dict[str, Path]
    imports: dict[str, list[Import]]  # module -> what its source imports

    def where(self, module: str, line: int | None = None) -> str:
        """The module's file relative to the package's parent (tgan_deploy/x/y.py), with `:line` if given."""
        path = str(self.modules[module].relative_to(self.root.parent))
        return path if line is None else f"{path}:{line}"


def import_graph(root: Path = PACKAGE) -> Graph:
    modules = module_names(root)
    return Graph(root, modules, {name: imports(name, path, modules) for name, path in modules.items()})


def layer_of(module: str) -> str | None:
    """The layer whose most specific pattern names `module` (tgan_deploy.x.y), or None."""
    rel = module.partition(".")[2] or "__init__"
    matches = []  # (specificity, layer): an exact name beats a package pattern, a deeper package a shallower one
    for layer, spec in LAYERS.items():
        for pattern in spec.modules:
            prefix = pattern.removesuffix(".*")
            if rel == pattern:
                matches.append((float("inf"), layer))
            elif pattern.endswith(".*") and (rel == prefix or rel.startswith(prefix + ".")):
                matches.append((prefix.count(".") + 1, layer))
    return max(matches)[1] if matches else None


def layer_violations(graph: Graph) -> list[str]:
    """One line per import that breaks `LAYERS`, naming the file, line and imported module."""
    problems = [f"{graph.where(m)}: module {m} is in no layer: add it to LAYERS (tests/test_import_layers.py) "
                "and docs/architecture.md" for m in graph.modules if layer_of(m) is None]
    for name, found in graph.imports.items():
        source = layer_of(name)
        if source is None:
            continue
        for imp in found:
            if imp.target not in graph.modules:
                continue
            target = layer_of(imp.target)
            if target is None or target == source or target in LAYERS[source].may_import:
                continue
            allowed = ", ".join(LAYERS[source].may_import) or "nothing"
            problems.append(f"{graph.where(name, imp.line)}: {name} imports {imp.target}: layer {source} may not "
                            f"import layer {target} (it may import: {allowed})")
    return problems


def torch_violations(graph: Graph) -> list[str]:
    """One line per import by which a torch-free layer reaches torch: `import torch` itself (anywhere for a "never"
    layer, at module level for a "lazy" one), or a module-level import of a torch layer's module that loads torch
    when imported (its chain named module by module)."""
    problems = []
    for name, found in sorted(graph.imports.items()):
        layer = layer_of(name)
        if layer is None or LAYERS[layer].torch == YES:
            continue
        rule = "never imports torch" if LAYERS[layer].torch == NEVER else "imports torch only inside functions"
        for imp in found:
            if imp.target == "torch" and (LAYERS[layer].torch == NEVER or not imp.lazy):
                problems.append(f"{graph.where(name, imp.line)}: {name} imports torch: layer {layer} {rule}")
            elif not imp.lazy and (target := layer_of(imp.target)) is not None and LAYERS[target].torch == YES:
                chain = _eager_path_to_torch(imp.target, graph)
                if chain:
                    problems.append(f"{graph.where(name, imp.line)}: {name} imports {imp.target} at module level, "
                                    f"which loads torch ({' -> '.join(chain)}): layer {layer} {rule}")
    return problems


def _eager_path_to_torch(start: str, graph: Graph) -> list[str]:
    """The modules importing `start` runs through to reach torch (parent packages' __init__ included), or []."""
    def eager(module: str) -> list[str]:
        parents = [".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)]
        return [p for p in parents if p in graph.modules] + [i.target for i in graph.imports[module] if not i.lazy]

    seen, stack = {start}, [[start]]
    while stack:
        path = stack.pop()
        for target in eager(path[-1]):
            if target == "torch":
                return [*path, "torch"]
            if target in graph.modules and target not in seen:
                seen.add(target)
                stack.append([*path, target])
    return []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def module_cycles(graph: Graph) -> list[list[str]]:
    return cycles({name: {i.target for i in found if i.target in graph.modules}
                   for name, found in graph.imports.items()})


# -- the package as it is -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()


def test_graph_sees_the_imports_it_must(graph: Graph) -> None:
    def targets(name: str, lazy: bool | None = None) -> set[str]:
        return {i.target for i in graph.imports[name] if lazy is None or i.lazy == lazy}

    assert "tgan_deploy.config" in targets("tgan_deploy.models.critic", lazy=False)  # a top-level import
    assert "tgan_deploy.data.folder" in targets("tgan_deploy.data.dataset")
    assert "tgan_deploy.metrics.evaluate" in targets("tgan_deploy.train.evaluation", lazy=True)  # in a function
    assert "tgan_deploy.checkpoint" in targets("tgan_deploy.runtime.backends.torch", lazy=True)
    assert "torch" in targets("tgan_deploy.checkpoint", lazy=False)  # third-party roots are kept
    assert "torch" in targets("tgan_deploy.runtime.sampler", lazy=True)
    assert "tensorrt" in targets("tgan_deploy.export.tensorrt", lazy=True)  # under `if TYPE_CHECKING:`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("tgan_deploy.runtime.bulk.plan") == "runtime.bulk"  # the more specific pattern wins
    assert layer_of("tgan_deploy.runtime.latents") == "runtime"
    assert layer_of("tgan_deploy") == "base" and layer_of("tgan_deploy.foreign.nvlabs") == "foreign"


def test_layers_only_look_down() -> None:
    """Every layer may import only layers listed before it: the table itself has no cycle and reads bottom up."""
    names = list(LAYERS)
    looking_up = {name: [m for m in spec.may_import if m not in names[:i]]
                  for i, (name, spec) in enumerate(LAYERS.items())}
    assert {name: later for name, later in looking_up.items() if later} == {}  # also catches a misspelt layer


def test_no_import_cycles(graph: Graph) -> None:
    assert module_cycles(graph) == []


def test_every_import_goes_where_the_layers_allow(graph: Graph) -> None:
    assert layer_violations(graph) == []


def test_torch_free_layers_do_not_load_torch(graph: Graph) -> None:
    assert torch_violations(graph) == []


def test_architecture_doc_mirrors_the_layers() -> None:
    """docs/architecture.md's "Import layers" table says what LAYERS says, row for row, in the same order."""
    section = ARCHITECTURE_DOC.read_text().split("## Import layers", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    documented = [(row[0].strip("`"), tuple(re.findall(r"`([^`]+)`", row[2])), row[3]) for row in rows]
    assert documented == [(name, spec.may_import, spec.torch) for name, spec in LAYERS.items()]


# -- the checks catch what they are for: imports planted in a copy of the package -----------------------------

@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package's Python source, to plant imports in."""
    return Path(shutil.copytree(PACKAGE, tmp_path / PACKAGE.name,
                                ignore=lambda _, names: [n for n in names if n.endswith((".pyc", ".so"))
                                                         or not (n.endswith(".py") or "." not in n)]))


def _plant(root: Path, module: str, code: str) -> int:
    """Append `code` to `module`'s file in the copy at `root`; the line number of its import statement."""
    path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    before = path.read_text().rstrip("\n") + "\n\n\n"
    path.write_text(before + code)
    lines = code.splitlines()
    return len(before.splitlines()) + 1 + next(n for n, text in enumerate(lines) if "import" in text)


@pytest.mark.parametrize(("module", "code", "message"), [
    # the runtime reaching up into metrics, inside a function (metrics.defaults imports nothing: no cycle)
    ("tgan_deploy.runtime.latents", "def _planted():\n    from tgan_deploy.metrics import defaults\n",
     "tgan_deploy/runtime/latents.py:{line}: tgan_deploy.runtime.latents imports tgan_deploy.metrics.defaults: "
     "layer runtime may not import layer metrics (it may import: base, config, checkpoint)"),
    # export reaching into the trainer (train.ema imports no export module)
    ("tgan_deploy.export.triton", "from tgan_deploy.train import ema\n",
     "tgan_deploy/export/triton.py:{line}: tgan_deploy.export.triton imports tgan_deploy.train.ema: "
     "layer export may not import layer train (it may import: base, config, models, checkpoint, foreign, runtime)"),
    # the service reaching past the runtime into the checkpoint loader
    ("tgan_deploy.serve.images", "def _planted():\n    import tgan_deploy.checkpoint\n",
     "tgan_deploy/serve/images.py:{line}: tgan_deploy.serve.images imports tgan_deploy.checkpoint: "
     "layer serve may not import layer checkpoint (it may import: base, runtime)"),
])
def test_an_upward_import_without_a_cycle_fails(package_copy: Path, module: str, code: str, message: str) -> None:
    line = _plant(package_copy, module, code)
    graph = import_graph(package_copy)
    assert module_cycles(graph) == []  # so only the layer rule can catch it
    assert layer_violations(graph) == [message.format(line=line)]  # the planted import, and nothing else


def test_torch_at_import_time_fails_even_in_an_allowed_direction(package_copy: Path) -> None:
    """runtime -> checkpoint is allowed (the torch backend loads checkpoints lazily); at module level it would
    load torch with the runtime."""
    line = _plant(package_copy, "tgan_deploy.runtime.model_path", "from tgan_deploy.checkpoint import load_generator\n")
    graph = import_graph(package_copy)
    assert layer_violations(graph) == [] and module_cycles(graph) == []
    assert torch_violations(graph) == [
        f"tgan_deploy/runtime/model_path.py:{line}: tgan_deploy.runtime.model_path imports tgan_deploy.checkpoint at "
        "module level, which loads torch (tgan_deploy.checkpoint -> torch): layer runtime imports torch only inside "
        "functions"]


def test_a_lazy_torch_import_fails_where_torch_is_never_allowed(package_copy: Path) -> None:
    line = _plant(package_copy, "tgan_deploy.serve.guards", "def _planted():\n    import torch\n")
    assert torch_violations(import_graph(package_copy)) == [
        f"tgan_deploy/serve/guards.py:{line}: tgan_deploy.serve.guards imports torch: layer serve never imports torch"]


def test_a_module_outside_every_layer_fails(package_copy: Path) -> None:
    (package_copy / "newthing.py").write_text("")
    assert layer_violations(import_graph(package_copy)) == [
        "tgan_deploy/newthing.py: module tgan_deploy.newthing is in no layer: add it to LAYERS "
        "(tests/test_import_layers.py) and docs/architecture.md"]
