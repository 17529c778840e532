"""Lazy package exports: a name's module is imported on first access (PEP 562 `__getattr__`)."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

#: Optional dependencies whose absence means "install the neural extra".
NEURAL = ("torch", "transformers", "safetensors", "huggingface_hub")


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `name` from `package.<exports[name]>`; a missing neural dependency
    becomes an ImportError that says which extra to install."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(f"{package}.{exports[name]}")
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in NEURAL:
                raise ImportError(f"{package}.{name} needs {e.name}: pip install 'rankstack[neural]'") from e
            raise
        return getattr(module, name)

    return __getattr__


#: Optional dependencies a module may lack: its stages or encoders are then not registered.
OPTIONAL = (*NEURAL, "faiss", "gguf", "accelerate")


def import_submodules(package: str) -> None:
    """Import every module of a package (so that the classes it defines register themselves); modules that need
    a missing optional dependency are skipped."""
    import pkgutil

    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(info.name)
        except ImportError as e:
            if e.name is None or e.name.split(".")[0] not in OPTIONAL:
                raise
