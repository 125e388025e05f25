"""The package's layering, read from its source with `ast` (docs/architecture.md): the op library
never imports the lab and needs only torch and numpy; no import cycle exists between modules, nor
between the lab's subpackages. Imports inside functions count like any other: a lazy import is no
way around a cycle."""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kaleido_cuda"
EXTENSIONS = ("_C",)  # compiled modules: leaves of the graph
OP_LIBRARY_MAY_IMPORT = {"torch", "numpy"}
ENTRY_POINTS = ("__main__",)  # `python -m kaleido_cuda` runs the lab's command line
# Python 3.10+; on 3.9 the check of the op library's third-party imports is skipped.
STDLIB = getattr(sys, "stdlib_module_names", None)
# docs/architecture.md's diagram, top to bottom: a component may import only components on a lower
# line (the op library is the lowest), never one on its own line or above.
LAYERS = (("lab.cli",), ("lab.pipeline",), ("lab.distill", "lab.privacy"), ("lab.dp",), ("lab.train",),
          ("lab.distributed", "lab.files"), ("op library",))


def module_names(root: Path) -> dict:
    """{dotted module name: file} for every .py file under the package folder `root`."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules) -> str:
    """The most specific known module that `name` (a.b.c) denotes: itself, else its longest prefix."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _with_packages(target: str, importer: str, modules) -> list:
    """The target and the packages above it that importing it runs first (a.b.c runs a/__init__
    and a/b/__init__), but for the importer's own packages, which are running already."""
    parts = target.split(".")
    above = {".".join(parts[:i]) for i in range(1, len(parts))}
    own = {".".join(importer.split(".")[:i]) for i in range(1, len(importer.split(".")) + 1)}
    return [target] + sorted(p for p in above - own if p in modules)


def imports_of(module: str, path: Path, modules) -> list:
    """(target module, imported top-level name) for every import statement anywhere in the file;
    a target's packages count as imported too."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(_resolve(a.name, modules), a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((_resolve(target if target in modules else base, modules), base.split(".")[0]))
    return [(t, top) for target, top in found for t in _with_packages(target, module, modules) if t != module]


def import_graph(root: Path) -> dict:
    """{module: {(target, top-level name), ...}} for the package in `root`."""
    files = module_names(root)
    modules = set(files) | {f"{root.name}.{ext}" for ext in EXTENSIONS}
    return {m: set(imports_of(m, p, modules)) for m, p in files.items()}


def cycles(edges: dict) -> list:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def internal_edges(graph: dict, package: str) -> dict:
    return {m: {t for t, _ in targets if t == package or t.startswith(package + ".")} for m, targets in graph.items()}


def in_lab(module: str, package: str) -> bool:
    return module == f"{package}.lab" or module.startswith(f"{package}.lab.")


def component(module: str, package: str) -> str:
    """The op library (every module outside the lab) or the lab subpackage or module it is in."""
    if not in_lab(module, package):
        return "op library"
    return ".".join(module.split(".")[:3])


def layer_violations(graph: dict, package: str) -> list:
    """Op-library modules that import the lab, or anything but the standard library, torch, numpy
    and the package itself."""
    allowed = set(STDLIB) | OP_LIBRARY_MAY_IMPORT | {package}
    bad = []
    for module, targets in graph.items():
        if in_lab(module, package) or module.split(".")[-1] in ENTRY_POINTS:
            continue
        bad += [f"{module} imports {t}" for t, _ in targets if in_lab(t, package)]
        bad += [f"{module} imports {top}" for _, top in targets if top not in allowed]
    return sorted(set(bad))


def component_edges(graph: dict, package: str) -> dict:
    edges = {}
    for module, targets in internal_edges(graph, package).items():
        if module.split(".")[-1] in ENTRY_POINTS:
            continue
        here = component(module, package)
        edges.setdefault(here, set()).update(component(t, package) for t in targets if component(t, package) != here)
    return edges


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_the_op_library_never_imports_the_lab_and_needs_only_torch_and_numpy(graph):
    if STDLIB is None:
        pytest.skip("sys.stdlib_module_names needs Python 3.10")
    assert layer_violations(graph, "kaleido_cuda") == []


def upward_imports(edges: dict, package: str) -> list:
    """Component edges that do not go down the LAYERS (lab.X names are written without the package)."""
    level = {f"{package}.{name}" if name != "op library" else name: i
             for i, line in enumerate(LAYERS) for name in line}
    return sorted(f"{a} imports {b}" for a, targets in edges.items() for b in targets
                  if a in level and b in level and level[b] <= level[a])


def test_the_lab_imports_go_down_the_layers_of_the_architecture_page(graph):
    edges = component_edges(graph, "kaleido_cuda")
    assert set(edges) - {"kaleido_cuda.lab"} <= {f"kaleido_cuda.{n}" if n != "op library" else n
                                                   for line in LAYERS for n in line}  # every part has a layer
    assert upward_imports(edges, "kaleido_cuda") == []


def test_no_module_import_cycle(graph):
    assert cycles(internal_edges(graph, "kaleido_cuda")) == []


def test_no_cycle_between_the_lab_subpackages_and_the_op_library(graph):
    assert cycles(component_edges(graph, "kaleido_cuda")) == []


def test_the_graph_sees_what_the_package_imports(graph):
    # A reader that misses relative or function-level imports would pass the tests above vacuously.
    edges = internal_edges(graph, "kaleido_cuda")
    assert "kaleido_cuda.ops" in edges["kaleido_cuda.transforms"]             # from .ops import kaleidoscope
    assert "kaleido_cuda.dsa.sampling" in edges["kaleido_cuda.dsa"]           # from . import eager, sampling
    assert "kaleido_cuda.lab.pipeline.distill" in edges["kaleido_cuda.lab.cli.distill"]  # inside run()
    assert "kaleido_cuda._C" in edges["kaleido_cuda._compiled"]


def _write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_planted_cycle_through_a_lazy_import_is_found(tmp_path):
    pkg = _write(tmp_path, {"__init__.py": "", "a.py": "from .b import f\n",
                            "b.py": "def f():\n    from . import a\n    return a\n", "c.py": "import os\n"})
    assert cycles(internal_edges(import_graph(pkg), "pkg")) == [["pkg.a", "pkg.b"]]


def test_a_planted_op_library_import_of_the_lab_is_found(tmp_path):
    pkg = _write(tmp_path, {"__init__.py": "", "ops.py": "def f():\n    from .lab.data import load\n",
                            "lab/__init__.py": "", "lab/data.py": "import scipy\ndef load(): pass\n",
                            "params.py": "import sklearn\n", "__main__.py": "from .lab import data\n"})
    assert layer_violations(import_graph(pkg), "pkg") == ["pkg.ops imports pkg.lab", "pkg.ops imports pkg.lab.data",
                                                          "pkg.params imports sklearn"]


def test_an_import_through_a_package_init_is_seen(tmp_path):
    # Importing pkg.sub.mod runs pkg/sub/__init__.py first: a cycle through it is a cycle.
    pkg = _write(tmp_path, {"__init__.py": "", "a.py": "from .sub.leaf import g\n", "sub/__init__.py": "from .. import a\n",
                            "sub/leaf.py": "def g():\n    pass\n"})
    assert cycles(internal_edges(import_graph(pkg), "pkg")) == [["pkg.a", "pkg.sub"]]


def test_a_planted_upward_import_is_found():
    edges = {"kaleido_cuda.lab.privacy": {"kaleido_cuda.lab.distill", "kaleido_cuda.lab.train"},
             "kaleido_cuda.lab.train": {"op library"}}
    assert upward_imports(edges, "kaleido_cuda") == ["kaleido_cuda.lab.privacy imports kaleido_cuda.lab.distill"]


def test_a_planted_cycle_between_lab_subpackages_is_found(tmp_path):
    pkg = _write(tmp_path, {"__init__.py": "", "lab/__init__.py": "", "lab/x/__init__.py": "", "lab/y/__init__.py": "",
                            "lab/x/one.py": "from ..y.two import g\n", "lab/y/two.py": "def g():\n    pass\n",
                            "lab/y/three.py": "from ..x import one\n"})
    assert cycles(internal_edges(import_graph(pkg), "pkg")) == []  # no module cycle ...
    assert cycles(component_edges(import_graph(pkg), "pkg")) == [["pkg.lab.x", "pkg.lab.y"]]  # ... but a layer one

