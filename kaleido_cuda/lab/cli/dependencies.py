"""What a command says when an optional dependency is missing: one line naming the extra of
kaleido-cuda (pyproject.toml) that brings it, instead of a traceback."""
from __future__ import annotations

import re
from importlib import metadata

# The optional dependencies, by import name: what to pip-install, and the extras of this package
# (pyproject.toml) that bring each one.
_OPTIONAL = {"tqdm": "tqdm", "torchvision": "torchvision", "sklearn": "scikit-learn", "PIL": "pillow",
             "scipy": "scipy", "matplotlib": "matplotlib", "skimage": "scikit-image", "kornia": "kornia",
             "opacus": "opacus", "dp_accounting": "dp-accounting"}
_COMMAND_EXTRA = {"demo": "demo", "distill": "distill", "buffer": "distill", "eval": "distill",
                  "quickstart": "distill", "audit": "audit", "dpsgd": "dp"}


def _extras_with(package: str) -> list:
    """The extras of the installed kaleido-cuda that list `package` (empty without its metadata)."""
    try:
        requires = metadata.requires("kaleido-cuda") or []
    except metadata.PackageNotFoundError:
        return []
    extras = []
    for line in requires:  # e.g. 'tqdm; extra == "distill"'
        name = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", line)
        if name and extra and name.group(1).lower() == package.lower():
            extras.append(extra.group(1))
    return extras


def missing_dependency_line(command: str, exc: ModuleNotFoundError):
    """One line saying which extra to install, for an optional dependency that is missing; None for
    any other missing module (a bug, which should show its traceback)."""
    top = (exc.name or "").split(".")[0]
    if top not in _OPTIONAL:
        return None
    package = _OPTIONAL[top]
    extras = _extras_with(package)
    extra = _COMMAND_EXTRA.get(command) if _COMMAND_EXTRA.get(command) in extras else (extras[0] if extras else None)
    if extra is None:
        return f"kaleido {command}: error: the optional dependency {package!r} is not installed: pip install {package}"
    return (f"kaleido {command}: error: the optional dependency {package!r} is not installed: "
            f"pip install \"kaleido-cuda[{extra}]\" (from a source checkout: "
            f"pip install --no-build-isolation \".[{extra}]\")")
