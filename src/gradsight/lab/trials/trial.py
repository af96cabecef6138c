"""What a trial is: a JSON-able config, its id, and the code version the id depends on.

A trial is a pure function of its config (the seed included) that returns JSON-able metrics.
Its id is

    id = sha256(kind, normalize(config), code_version(module))[:16]

where ``normalize`` is the config as canonical JSON (sorted keys, no spaces) and
``code_version`` hashes the source of the module that computes the trial together with the
source of every gradsight module it imports, transitively (so editing the training loop, a
model or the monitor changes the id; editing the CLI or the web page does not). Libraries
outside gradsight are not hashed; their versions are stored beside each result.

>>> a = trial_id("sweep", {"lr": 0.1, "seed": 0}, "v1")
>>> a == trial_id("sweep", {"seed": 0, "lr": 0.1}, "v1"), a == trial_id("sweep", {"lr": 0.1, "seed": 1}, "v1")
(True, False)
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError

__all__ = ["Trial", "as_json", "code_version", "dumps", "normalize", "plain", "trial_id"]


def plain(value: Any) -> Any:
    """JSON's ``default`` hook: numpy/torch scalars and arrays as Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-able: {value!r} ({type(value).__name__})")


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, NaN/Inf kept (``json.loads`` reads them back)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=plain)


def as_json(value: Any) -> Any:
    """``value`` as JSON gives it back, key order kept (metrics: what the store returns)."""
    return json.loads(json.dumps(value, default=plain))


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """The config as JSON would give it back (tuples → lists, numpy numbers → Python numbers);
    a float that is a whole number stays a float, so ``lr=1`` and ``lr=1.0`` differ only if the
    caller made them differ."""
    if not isinstance(config, dict):
        raise GradsightError(f"a trial config must be a dict, got {config!r}")
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise GradsightError(f"trial config {key}={value!r} is not a finite number")
    return json.loads(dumps(config))


def trial_id(kind: str, config: dict[str, Any], version: str) -> str:
    """sha256 of (kind, canonical config, code version), first 16 hex digits."""
    text = dumps({"kind": kind, "config": normalize(config), "version": version})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Trial:
    """One unit of work: ``kind`` names what computes it (an experiment, or ``"sweep"``),
    ``config`` is its JSON-able input (seed included), ``version`` the code version."""

    kind: str
    config: dict[str, Any]
    version: str

    @property
    def id(self) -> str:
        return trial_id(self.kind, self.config, self.version)

    def label(self) -> str:
        """A short human name: kind and the config's values."""
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        return f"{self.kind}({inner})"


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@functools.lru_cache(maxsize=512)
def _imports(path: Path, module: str) -> frozenset[str]:
    """Modules of ``module``'s own top-level package that ``path`` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parent = parts if is_package else parts[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # submodules imported by name
    root = module.split(".")[0]
    return frozenset(m for m in found if m == root or m.startswith(root + "."))


@functools.lru_cache(maxsize=64)
def code_version(module: str) -> str:
    """sha256 (16 hex digits) of ``module``'s source and of every module of its own top-level
    package (gradsight) it imports, transitively, parent packages included (importing ``a.b``
    runs ``a/__init__.py``). Cached per process: edit a file, and a new process sees it."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_imports(path, name))
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    if module not in seen:
        raise GradsightError(f"cannot find the source of module {module!r}")
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name].read_bytes() + b"\0")
    return digest.hexdigest()[:16]
