"""The parts of ``make bench``, in the order a full run takes them.

Each part is a module with ``NAME``, ``run(cfg, logs) -> dict`` (it starts
the stack it needs on a fresh database, measures, stops it, and returns its
figures) and ``table(result) -> str`` (the lines printed at the end). A part
that states a ratio measures both sides in its own run, since the machine's
speed drifts from minute to minute. ``python -m bench PART ...`` (or
``BENCH_PARTS``) runs some parts alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module; a new part is one module and one line here.
PARTS: dict[str, str] = {
    "core": "bench.parts.core",
    "lifecycle": "bench.parts.lifecycle",
    "writers": "bench.parts.writers",
    "intake": "bench.parts.intake",
    "streams": "bench.parts.streams",
    "assistance": "bench.parts.assistance",
    "console": "bench.parts.console",
}


def load(name: str) -> ModuleType:
    if name not in PARTS:
        raise SystemExit(f"unknown bench part {name!r}; the parts are: {', '.join(PARTS)}")
    return importlib.import_module(PARTS[name])
