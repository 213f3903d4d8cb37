"""Shared timing helper for the benchmarks: warm-up, ``block_until_ready``, median of repeats, JSON out.

Benchmarks are plain scripts (``python benchmarks/bench_x.py``), never collected by the test suite. Each
writes ``benchmarks/results/<name>.json`` with the machine's description and prints a one-line summary.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax


def block(tree: Any) -> Any:
  """Waits for every array in ``tree`` (JAX dispatch is asynchronous)."""
  return jax.tree_util.tree_map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def time_fn(fn: Callable[[], Any], *, warmup: int = 2, repeats: int = 7, number: int = 1) -> dict:
  """Median wall time of ``fn()`` in seconds, after ``warmup`` calls; each sample runs it ``number`` times."""
  for _ in range(warmup):
    block(fn())
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(number):
      out = fn()
    block(out)
    samples.append((time.perf_counter() - start) / number)
  return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
          "repeats": repeats, "number": number}


def time_interleaved(fns: dict[str, Callable[[], Any]], *, warmup: int = 2, repeats: int = 11) -> dict:
  """:func:`time_fn` of several contenders side by side: each round times every contender once, in turn, so
  that a change of machine load during the run hits them all alike. ``{name: stats}``."""
  for fn in fns.values():
    for _ in range(warmup):
      block(fn())
  samples: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      block(fn())
      samples[name].append(time.perf_counter() - start)
  return {name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "repeats": repeats,
                 "number": 1} for name, s in samples.items()}


def load_average() -> list[float] | None:
  """The 1, 5 and 15 minute load averages (None where the platform has none): timings depend on them."""
  try:
    return list(os.getloadavg())
  except (AttributeError, OSError):
    return None


def machine_info() -> dict:
  devices = jax.devices()
  return {
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "processor": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "devices": [d.device_kind for d in devices],
      "load_average": load_average(),
  }


def write_results(name: str, results: dict, summary: str) -> Path:
  """Writes ``benchmarks/results/<name>.json`` (results + machine info) and prints the summary line."""
  out_dir = Path(os.environ.get("LRTOOLS_BENCH_DIR", Path(__file__).parent / "results"))
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / f"{name}.json"
  payload = {"benchmark": name, "machine": machine_info(), "summary": summary, "results": results}
  path.write_text(json.dumps(payload, indent=2, default=float))
  print(summary)
  print(f"wrote {path}")
  return path
