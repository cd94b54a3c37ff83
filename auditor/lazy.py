"""Heavy libraries loaded on first use, so a command that never uses them (`--help`, `checks`) starts at once.

    if TYPE_CHECKING:
        import polars as pl
    else:
        from auditor.lazy import polars as pl

`pl.col(...)` then imports polars the first time it runs (importlib's own lock makes that safe from several
threads at once) and is plain attribute access after that.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> Any:  # only called for what is not cached on the proxy yet
        value = getattr(importlib.import_module(self._name), attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {self._name!r}>"


polars = LazyModule("polars")
