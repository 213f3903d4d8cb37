"""The find-lr plotting worker: a second process imports matplotlib while this one imports JAX and compiles.

matplotlib's import and first ``savefig`` take ~1.5 s of a ~6 s one-shot ``lrtools find-lr``; a thread would
not overlap them with compiling (the GIL), a process on the second core does. The protocol:

1. :func:`start` launches ``python -c ...`` running this file's :func:`serve` (through ``runpy.run_path``,
   so the worker never imports lrtools, hence never JAX), given the file of
   :func:`lrtools.plotting.plot_range_test`, which imports nothing from lrtools at load time either. The
   worker imports matplotlib, builds an empty figure, then blocks reading its stdin.
2. :func:`draw` writes one pickle of ``(payload, path, title)`` to the worker's stdin and closes it, where
   ``payload`` (:func:`payload`) is what ``plot_range_test`` reads from a result, as plain NumPy data; the
   worker draws and saves the PNG and exits 0. If the worker could not start or exits non-zero, :func:`draw`
   plots in this process instead.
3. An empty stdin (the command failed, or there was nothing to plot) makes the worker exit without drawing;
   :func:`stop` closes it so.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from types import SimpleNamespace

_SERVE = "import runpy, sys; runpy.run_path(sys.argv[1])['serve'](sys.argv[2])"


def start() -> subprocess.Popen | None:
  """Starts the worker; ``None`` if it cannot start (then :func:`draw` plots in this process)."""
  import inspect

  from lrtools.plotting import plot_range_test
  try:
    return subprocess.Popen([sys.executable, "-c", _SERVE, __file__, inspect.getfile(plot_range_test)],
                            stdin=subprocess.PIPE)
  except OSError:
    return None


_METHODS = ("suggestions", "stop_line", "agreement")  # read by calling them; sent as their values


def payload(result) -> dict:
  """What ``plot_range_test`` reads from a result, as plain NumPy data (picklable, no JAX needed): its
  arrays, and the values of the methods it calls (the suggestions, the stop line, the agreement)."""
  return {"lrs": result.lrs, "losses": result.losses, "num_steps_run": result.num_steps_run,
          "num_repeats": result.num_repeats, "centred_losses": result.centred_losses,
          "median_losses": result.median_losses, "band": result.band, "suggestions": result.suggestions(),
          "stop_line": result.stop_line(), "agreement": result.agreement()}


def _as_result(data: dict) -> SimpleNamespace:
  """A payload as the object ``plot_range_test`` reads (methods return the values computed in the main process)."""
  values = {name: data.pop(name) for name in _METHODS}
  return SimpleNamespace(**data, **{name: (lambda v=value: v) for name, value in values.items()})


def _title(title: str, ax) -> str:
  """The command's title over the plot's own line (steps run, stop reason, agreement)."""
  return f"{title}\n{ax.get_title()}" if ax.get_title() else title


def draw(result, path: str, title: str, worker: subprocess.Popen | None) -> None:
  """Plots ``result`` to the PNG ``path``: by the worker if it runs and succeeds, else in this process."""
  if worker is not None:
    worker.communicate(pickle.dumps((payload(result), path, title)))
    if worker.returncode == 0:
      return
  from matplotlib.figure import Figure  # not pyplot: no GUI backend to import

  from lrtools.plotting import plot_range_test
  fig = Figure(figsize=(7, 4), layout="constrained")
  ax = plot_range_test(result, ax=fig.add_subplot())
  ax.set_title(_title(title, ax), fontsize=10)
  fig.savefig(path, dpi=120)


def stop(worker: subprocess.Popen | None) -> None:
  """Lets a worker that was sent nothing exit (an empty stdin), and waits for it."""
  if worker is not None and worker.poll() is None:
    worker.stdin.close()
    worker.wait()


def serve(plot_module: str) -> None:
  """The worker's main: imports matplotlib now, then draws the pickled ``(payload, path, title)`` from stdin."""
  import runpy

  from matplotlib.figure import Figure
  plot_range_test = runpy.run_path(plot_module)["plot_range_test"]
  fig = Figure(figsize=(7, 4), layout="constrained")
  ax = fig.add_subplot()
  request = sys.stdin.buffer.read()
  if not request:  # the main process gave up (an error, or no plot after all)
    return
  data, path, title = pickle.loads(request)
  plot_range_test(_as_result(data), ax=ax)
  ax.set_title(_title(title, ax), fontsize=10)
  fig.savefig(path, dpi=120)
