"""``lrtools search [--trials 64 --steps 300 --param learning_rate=log:1e-5:1 ...] [--out FILE.png]``.

Searches the hyperparameters of an optimizer on the embedded digits dataset: every trial trains the default
model (``--model``) for ``--steps`` steps with ``lrtools.train_loop`` and is scored by its validation loss
(``--metric loss``, lower is better; ``--metric accuracy``, higher is better). Every trial starts from the
same initial parameters and sees the same batches (both from ``--seed``), so scores differ only by the
hyperparameters. Trials train together, ``jax.vmap``-ed, ``--chunk-size`` at a time. A run that diverges
scores NaN and ranks worst. Prints the table (best first) and the warnings, plots score against each
parameter (``--out``).

``--param NAME=KIND:ARGS`` (repeatable) names an argument of the ``--optimizer`` factory and its range:
``log:LOW:HIGH`` (log-uniform), ``uniform:LOW:HIGH``, ``int:LOW:HIGH`` (both ends included) or
``choice:V1,V2,...``. Default: ``learning_rate=log:1e-5:1``, plus ``momentum=uniform:0.5:0.99`` for
``momentum``/``nesterov``.

- Without ``--storage``: ``random_search`` (Bergstra & Bengio 2012), in this process.
- ``--storage URL --study NAME``: an Optuna worker (``optuna_search``, TPE by default): it asks
  ``--chunk-size`` trials at a time (default 8), trains them together, tells the scores, until it has run
  ``--trials`` trials; any number of processes and machines can run the same command at once, and each
  prints the whole study so far. ``URL`` is ``sqlite:///FILE.db`` or a journal file path (one machine),
  ``postgresql://USER:PASS@HOST/DB`` / ``mysql+pymysql://...`` or ``grpc://HOST:PORT`` (many machines).
- ``--storage URL --study NAME --report``: the master's view, trains nothing: prints the table and writes
  the plot of every trial completed so far.

As ``find-lr``, run as a program it keeps JAX's persistent compilation cache (``--cache-dir``, ``--no-cache``),
so a second run of the same command (a second worker on the same machine) skips compiling.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import time
from typing import Sequence

from lrtools.cli._args import step_count
from lrtools.cli._find_lr import OPTIMIZERS, _enable_compilation_cache, default_cache_dir
from lrtools.cli._progress import Progress

KINDS = ("log", "uniform", "int", "choice")
DEFAULT_SPACE = {"learning_rate": "log:1e-5:1", "momentum": "uniform:0.5:0.99"}


def positive_int(text: str) -> int:
  """An argparse ``type``: a positive integer that fits int32."""
  return step_count(text)


def parse_param(text: str):
  """``"learning_rate=log:1e-5:1"`` -> ``("learning_rate", log_uniform(1e-5, 1.0))``; a ValueError says why."""
  from lrtools.search import choice, int_uniform, log_uniform, uniform
  name, sep, spec = text.partition("=")
  kind, _, rest = spec.partition(":")
  if not sep or not name.strip() or kind not in KINDS or not rest:
    raise ValueError(f"must be NAME=KIND:ARGS with KIND one of {', '.join(KINDS)} (e.g. learning_rate=log:1e-5:1, "
                     "n=int:1:4, b2=choice:0.99,0.999)")
  parts = rest.split(",") if kind == "choice" else rest.split(":")
  try:
    values = [int(p) if kind == "int" or (kind == "choice" and p.strip().lstrip("+-").isdigit()) else float(p)
              for p in parts]
  except ValueError:
    raise ValueError(f"has a value that is not a number: {rest!r}") from None
  if kind == "choice":
    return name.strip(), choice(values)
  if len(values) != 2:
    raise ValueError(f"{kind} needs exactly LOW:HIGH, got {rest!r}")
  return name.strip(), {"log": log_uniform, "uniform": uniform, "int": int_uniform}[kind](*values)


def searchable(optimizer: str) -> list[str]:
  """The numeric hyperparameters of an ``lrtools.optimizers`` factory (those that take a schedule or a value)."""
  from lrtools import optimizers
  params = inspect.signature(getattr(optimizers, optimizer)).parameters.values()
  return [p.name for p in params if "ScalarOrSchedule" in str(p.annotation)]


def build_space(args: argparse.Namespace) -> dict:
  """The space of ``--param`` (or the default), each name checked against ``--optimizer``: usage errors exit 2."""
  allowed = searchable(args.optimizer)
  specs = args.param or [f"{k}={v}" for k, v in DEFAULT_SPACE.items() if k in allowed]
  space = {}
  for text in specs:
    try:
      name, param = parse_param(text)
    except ValueError as e:
      args.parser.error(f"argument --param: {text!r} {e}")
    if name not in allowed:
      args.parser.error(f"argument --param: {text!r}: {args.optimizer} has no hyperparameter {name!r} "
                        f"(it takes {', '.join(allowed)})")
    if name in space:
      args.parser.error(f"argument --param: {text!r}: {name!r} is given twice")
    space[name] = param
  return space


def make_objective(args: argparse.Namespace, dataset):
  """``objective(config, key)``: trains ``--model`` with ``--optimizer(**config)`` for ``--steps`` steps and
  returns the validation loss (or accuracy). The key is unused: same start, same batches for every trial."""
  import jax.numpy as jnp

  from lrtools import data, models, optimizers, train_loop
  model = models.classifier(args.model, dataset.num_classes)
  loss = models.cross_entropy_loss(model)
  train = data.batches(dataset.x_train, dataset.y_train, args.batch_size, args.steps, args.seed)
  params = models.init_params_host(model, args.seed, dataset.x_train)
  valid = {"x": dataset.x_valid, "y": dataset.y_valid}
  factory = getattr(optimizers, args.optimizer)

  def objective(config, key):
    optimizer = factory(**config)
    out = train_loop(loss, optimizer, params, optimizer.init(params), train, num_steps=args.steps)
    if args.metric == "loss":
      return loss(out.params, valid)
    logits = model.apply({"params": out.params}, valid["x"])
    return (jnp.argmax(logits, axis=-1) == valid["y"]).astype(logits.dtype).mean()
  return objective


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
  if args.report and not args.storage:
    args.parser.error("--report reads a shared study: it needs --storage URL and --study NAME")
  if args.storage and not args.study:
    args.parser.error("--storage needs --study NAME (the study every worker joins)")
  if args.study and not args.storage:
    args.parser.error("--study needs --storage URL (where the study lives)")
  space = None if args.report else build_space(args)
  if args.cache and (args.cache_dir or getattr(args, "as_program", False)):
    _enable_compilation_cache(args.cache_dir or default_cache_dir())
  progress = Progress(args.quiet, "trial")
  try:
    result, numbers, header = _report(args) if args.report else _search(args, space, progress)
  except (ValueError, FileNotFoundError, ImportError) as e:
    progress.close()
    print(f"lrtools search: {e}", file=sys.stderr)
    return 2
  progress.close()
  print(header)
  print(_numbered(result.table(top=args.top), numbers))
  best = ", ".join(f"{k}={v:.4g}" for k, v in result.best_config.items())
  print(f"best: {best} (score {result.best_score:.4g})")
  for warning in result.warnings:
    print(f"  warning: {warning}")
  if args.out:
    progress.stage("plotting")
    _plot(result, args.out, header)
    print(f"wrote {args.out}")
  progress.stage("done")
  return 0


def _open_study(args: argparse.Namespace, *, create: bool):
  """The shared study, or a ValueError naming ``--storage``/``--study``."""
  from lrtools.search._optuna import create_study, import_optuna, open_storage
  call = "lrtools search --storage"
  optuna = import_optuna(call)
  storage = open_storage(call, args.storage)
  try:
    if create:
      return create_study(call, storage, args.study, "maximize" if args.metric == "accuracy" else "minimize")
    return optuna.load_study(study_name=args.study, storage=storage)
  except KeyError:
    raise ValueError(f"--study {args.study!r}: no such study in --storage {args.storage!r}") from None
  except Exception as e:  # SQLAlchemy's (a bad URL, a missing driver, an unreachable server) and gRPC's
    raise ValueError(f"--storage {args.storage!r}: {type(e).__name__}: {e}") from None


def _report(args: argparse.Namespace):
  from lrtools.search._optuna import snapshot
  with _quiet_optuna():
    result, numbers = snapshot(_open_study(args, create=False))
  return result, numbers, f"study {args.study!r} in {args.storage}: {result.num_trials} completed trials"


@contextlib.contextmanager
def _quiet_optuna():
  """Optuna's INFO lines off (no line per study or trial: the bar and the table say it), restored after."""
  from lrtools.search._optuna import import_optuna
  logging = import_optuna("lrtools search --storage").logging
  before = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(before)


def _search(args: argparse.Namespace, space: dict, progress: Progress):
  import jax

  from lrtools import data
  from lrtools.search import optuna_search, random_search
  from lrtools.search._optuna import snapshot
  progress.stage("loading digits")
  dataset = data.load_digits(seed=args.seed, flat=args.model == "mlp")
  objective = make_objective(args, dataset)
  key = jax.random.key(args.seed)
  metric = "validation loss (lower is better)" if args.metric == "loss" else "validation accuracy (higher is better)"
  what = f"{args.model}, {args.optimizer}, {args.steps} steps, {metric}"
  minimize = args.metric == "loss"
  if not args.storage:
    # Chunks of 16 by default: the bar moves after each one, and the last is padded, so still one compile.
    chunk = args.chunk_size or min(args.trials, 16)
    progress.stage(f"compiling and training {args.trials} trials, {chunk} per chunk")
    progress(0, args.trials)
    result = random_search(objective, space, args.trials, key=key, minimize=minimize, chunk_size=chunk,
                           progress=progress)
    return result, None, f"random search on digits: {args.trials} trials, {what}"
  batch = args.chunk_size or 8
  with _quiet_optuna():
    _open_study(args, create=True)  # errors about the storage name the option
    progress.stage(f"Optuna worker on study {args.study!r}: {args.trials} trials, {batch} at a time "
                   "(the first batch compiles)")
    progress(0, args.trials)
    result = optuna_search(objective, space, args.trials, key=key, storage=args.storage, study_name=args.study,
                           batch_size=batch, sampler=args.sampler, minimize=minimize, progress=progress)
    result, numbers = snapshot(result.study, result.space)  # with the trial numbers, from one read
  return result, numbers, (f"study {args.study!r} in {args.storage}: {result.num_trials} completed trials "
                  f"({args.trials} by this worker), {what}")


def _numbered(table: str, numbers: list[int] | None) -> str:
  """``SearchResult.table()`` with its ``trial`` column (the index among the completed trials) showing each
  trial's Optuna number instead, which differs once a trial failed or is still running."""
  lines = table.splitlines()
  if numbers is None or numbers == list(range(len(numbers))):
    return table
  head = lines[0]
  start, end = len(head.split("rank")[0]) + len("rank") + 2, head.index("trial") + len("trial")
  width = max(len("trial"), *(len(str(n)) for n in numbers))
  out = [head[:start] + "trial".rjust(width) + head[end:]]
  for line in lines[1:]:
    cell = line[start:end].strip()
    out.append(line[:start] + str(numbers[int(cell)]).rjust(width) + line[end:] if cell.isdigit() else line)
  return "\n".join(out)


def _plot(result, path: str, title: str) -> None:
  import matplotlib
  if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
    matplotlib.use("Agg")  # a file, never a window
  import matplotlib.pyplot as plt
  import numpy as np
  drawn = result.plot()
  fig = drawn if hasattr(drawn, "savefig") else np.ravel(drawn)[0].figure
  fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def add_parser(commands) -> None:
  search = commands.add_parser(
      "search", help="search an optimizer's hyperparameters on digits (random search, or an Optuna worker)",
      description="Trains many configurations at once on the embedded digits dataset and ranks them by "
      "validation loss. Without --storage: random search here; with --storage/--study: an Optuna worker "
      "that any number of machines can run; --report prints a shared study.")
  search.add_argument("--trials", type=positive_int, default=64, help="trials to run (per worker; default 64)")
  search.add_argument("--steps", type=step_count, default=300, help="training steps per trial (default 300)")
  search.add_argument("--batch-size", type=positive_int, default=64, help="examples per step (default 64)")
  search.add_argument("--param", action="append", metavar="NAME=KIND:ARGS",
                      help="a hyperparameter of --optimizer and its range: log:LOW:HIGH, uniform:LOW:HIGH, "
                      "int:LOW:HIGH or choice:V1,V2,... (repeat; default learning_rate=log:1e-5:1 and, for "
                      "momentum/nesterov, momentum=uniform:0.5:0.99)")
  search.add_argument("--optimizer", choices=OPTIMIZERS, default="momentum")
  search.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="mlp: 64-128-128-10 (default)")
  search.add_argument("--metric", choices=("loss", "accuracy"), default="loss",
                      help="score: validation loss (default, minimized) or accuracy (maximized)")
  search.add_argument("--chunk-size", type=positive_int, default=None,
                      help="trials trained together in one call (memory); an Optuna worker asks this many at "
                      "a time (default: all trials for random search, 8 for a worker)")
  search.add_argument("--storage", help="Optuna storage shared by workers: sqlite:///FILE.db or a journal file "
                      "(one machine), postgresql://..., mysql+pymysql://..., grpc://HOST:PORT (many machines)")
  search.add_argument("--study", help="the Optuna study name every worker joins (with --storage)")
  search.add_argument("--report", action="store_true",
                      help="print the table and write the plot of the shared study, without running trials")
  search.add_argument("--sampler", choices=("tpe", "random"), default="tpe", help="Optuna's sampler (default tpe)")
  search.add_argument("--top", type=positive_int, default=20, help="rows of the table (default 20)")
  search.add_argument("--seed", type=int, default=0, help="data split, batches, initialization and sampling")
  search.add_argument("--cache-dir", help="where to keep JAX's persistent compilation cache (default: on, in "
                      "$XDG_CACHE_HOME/lrtools/jax, i.e. ~/.cache/lrtools/jax)")
  search.add_argument("--no-cache", dest="cache", action="store_false", help="no persistent compilation cache")
  search.add_argument("--quiet", action="store_true", help="no progress output")
  search.add_argument("--out", help="write the plot (score against each parameter) to this PNG file")
  search.set_defaults(run=run, parser=search, takes_extra=False)
