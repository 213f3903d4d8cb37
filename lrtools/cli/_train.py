"""``lrtools train --model mlp|cnn --optimizer NAME [--schedule NAME --param value ...] --epochs N
--dashboard FILE.png [--tensorboard DIR]``.

Trains a default model on the embedded digits dataset while watching it the CS231n way: the optimizer is
wrapped in ``lrtools.diagnostics.monitored`` (gradient norms, update:weight ratios per layer), every
epoch records the train/validation loss and accuracy, activation statistics and histograms of the hidden
layers (on the validation set), gradient histograms and the first layer's weights into a
``TrainingHistory``; at the end it draws the dashboard and prints ``advise``'s advice.

One epoch is one compiled program (``lrtools.train_loop``), traced once and reused every epoch: its batches
are arguments. The loop records the monitors after each step (``record=read_monitor``'s ratios and norms),
and the step records stay on the device until the epoch ends. The schedule's parameters follow ``--schedule NAME`` as in
``lrtools schedule``; a ``total_steps`` it takes (one_cycle, wsd), or a required ``decay_steps`` (cosine,
polynomial), defaults to the run's ``epochs × steps per epoch``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from typing import Sequence

from lrtools.cli._args import INT32_MAX, step_count
from lrtools.cli._find_lr import OPTIMIZERS, _optimizer_factory
from lrtools.cli._progress import Progress
from lrtools.cli._schedule import SCHEDULES, check_required, parse_params

LR_SCHEDULES = {k: v for k, v in SCHEDULES.items() if not k.endswith("_momentum")}
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "rmsprop": 1e-3, "adam": 1e-3,
              "yogi": 1e-2}
_KEEP = ("update_ratio", "grad_norm", "update_norm", "learning_rate")  # per-step monitor series recorded


def _schedule(args: argparse.Namespace, extra: Sequence[str], total_steps: int):
  """The learning rate: ``--schedule NAME`` with its parameters, or the constant ``--learning-rate``."""
  from lrtools import schedules
  if args.schedule is None:
    if extra:
      args.parser.error(f"unrecognized arguments: {' '.join(extra)} (schedule parameters need --schedule NAME)")
    rate = DEFAULT_LR[args.optimizer] if args.learning_rate is None else args.learning_rate
    return schedules.constant_schedule(rate)
  if args.learning_rate is not None:
    args.parser.error("--learning-rate conflicts with --schedule: give the schedule's own values "
                      "(e.g. --init-value 0.1)")
  factory = LR_SCHEDULES[args.schedule]
  params = parse_params(extra, factory, args.parser)
  accepted = inspect.signature(factory).parameters
  for name in ("total_steps", "decay_steps"):
    required = name in accepted and accepted[name].default is inspect.Parameter.empty
    if name in accepted and name not in params and (name == "total_steps" or required):
      params[name] = total_steps
  check_required(factory, params, args.parser)
  return factory(**params)


def _first_layer_image(params, image_shape):
  """The first kernel as (N, H, W, C) filters: a conv kernel (kh, kw, c, n), or a dense kernel (inputs, n)
  whose inputs are the pixels of an ``image_shape`` image."""
  import numpy as np
  kernel = np.asarray(params["Conv_0" if "Conv_0" in params else "Dense_0"]["kernel"])
  if kernel.ndim == 4:
    return kernel.transpose(3, 0, 1, 2)
  return kernel.T.reshape(-1, *image_shape)


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
  if args.dashboard and not os.path.isdir(os.path.dirname(os.path.abspath(args.dashboard))):
    args.parser.error(f"--dashboard: the directory of {args.dashboard!r} does not exist")
  return _train(args, extra, Progress(args.quiet, "epoch"))


def _train(args: argparse.Namespace, extra: Sequence[str], progress: Progress) -> int:
  fresh = getattr(args, "as_program", False)  # run as a program: JAX's backend has not started yet
  if fresh and args.model == "mlp" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    # As in find-lr: the MLP's programs are tiny, compiling dominates; XLA's level 0 compiles them faster
    # (measured on 2 shared cores: the 10-epoch run's training stage 9.7 -> 6.7 s). Read when the backend
    # starts; XLA_FLAGS set by the user win, and a caller's process (main(argv)) is left alone.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true").strip()
  import jax
  import jax.numpy as jnp
  import numpy as np

  from lrtools import data, diagnostics, models
  from lrtools._hyperparams import path_name
  from lrtools._loop import train_loop

  progress.stage("loading digits")
  dataset = data.load_digits(seed=args.seed, flat=args.model == "mlp")
  steps_per_epoch = -(-len(dataset.x_train) // args.batch_size)
  total = steps_per_epoch * args.epochs
  try:  # every value is checked here, at construction: the factories' messages name the parameter
    schedule = _schedule(args, extra, total)
    optimizer = diagnostics.monitored(_optimizer_factory(args.optimizer, args.momentum)(schedule))
    writer = diagnostics.tensorboard_writer(args.tensorboard) if args.tensorboard else None
  except (TypeError, ValueError) as e:
    print(f"lrtools train: {e}", file=sys.stderr)
    return 2
  model = models.classifier(args.model, dataset.num_classes)
  loss_fn = models.cross_entropy_loss(model)
  params = models.init_params_host(model, args.seed, dataset.x_train)
  opt_state = optimizer.init(params)
  batches = data.batches(dataset.x_train, dataset.y_train, args.batch_size, total, args.seed)
  history = diagnostics.TrainingHistory(num_classes=dataset.num_classes, writer=writer)
  train_set = {"x": jnp.asarray(dataset.x_train), "y": jnp.asarray(dataset.y_train)}
  valid_set = {"x": jnp.asarray(dataset.x_valid), "y": jnp.asarray(dataset.y_valid)}

  def monitors(opt_state):  # per step: the update:weight ratio per leaf, and the global norms
    return {k: v for k, v in diagnostics.read_monitor(opt_state).items() if k.split("/")[0] in _KEEP
            and (k.split("/")[0] == "update_ratio" or "/" not in k)}

  @jax.jit
  def run_epoch(params, opt_state, epoch_batches):
    out = train_loop(loss_fn, optimizer, params, opt_state, epoch_batches, record=monitors)
    return out.params, out.opt_state, {**out.records.state, "loss": out.records.loss}

  @jax.jit
  def evaluate(params):
    def scores(split):
      logits = model.apply({"params": params}, split["x"])
      loss = jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, split["y"][:, None], -1)[:, 0])
      return loss, jnp.mean((jnp.argmax(logits, -1) == split["y"]).astype(loss.dtype))
    (train_loss, train_acc), (valid_loss, valid_acc) = scores(train_set), scores(valid_set)
    acts = diagnostics.capture_activations(model, valid_set["x"], params)
    stats = diagnostics.activation_stats(acts, nonlinearity="relu")
    grads = jax.grad(loss_fn)(params, {"x": train_set["x"][:256], "y": train_set["y"][:256]})
    metrics = {"train_loss": train_loss, "train_accuracy": train_acc, "valid_loss": valid_loss,
               "valid_accuracy": valid_acc, **{k: v for k, v in stats.as_dict().items()
                                                if k.split("/")[0] in ("dead_fraction", "zero_fraction")}}
    hists = {**{f"activation/{k}": jax.nn.relu(v) for k, v in acts.items()},
             **{f"grad/{path_name(p)}": g for p, g in jax.tree_util.tree_flatten_with_path(grads)[0]}}
    return metrics, hists

  progress.stage(f"training {args.model} on digits: {args.optimizer}, "
                 f"{args.schedule or 'constant'} schedule, {args.epochs} epochs of {steps_per_epoch} steps "
                 "(compiling the first)")
  for epoch in range(args.epochs):
    window = slice(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch)
    epoch_batches = {k: v[window] for k, v in batches.items()}
    params, opt_state, records = run_epoch(params, opt_state, epoch_batches)
    history.record_steps(epoch * steps_per_epoch, records)
    metrics, hists = evaluate(params)
    history.record_epoch(epoch + 1, metrics, hists,
                         {"first_layer_weights": _first_layer_image(params, dataset.image_shape)})
    last = {k: float(history.epochs[k][-1]) for k in ("train_loss", "train_accuracy", "valid_accuracy")}
    progress(epoch + 1, args.epochs, f"loss {last['train_loss']:.3f}  acc {last['train_accuracy']:.3f}/"
             f"{last['valid_accuracy']:.3f}")
  progress.close()
  if writer is not None:
    writer.close()
  last = {k: history.epochs[k][-1] for k in ("train_loss", "valid_loss", "train_accuracy", "valid_accuracy")}
  print(f"trained {args.model} on digits: {args.optimizer}, {args.schedule or 'constant'} schedule, "
        f"{args.epochs} epochs ({total} steps)")
  print(f"  loss  train {last['train_loss']:.4f}  valid {last['valid_loss']:.4f}")
  print(f"  accuracy  train {last['train_accuracy']:.4f}  valid {last['valid_accuracy']:.4f}")
  ratio = np.asarray(history.steps.get("update_ratio", [np.nan]))
  print(f"  update:weight ratio (median of the last epoch) {np.nanmedian(ratio[-steps_per_epoch:]):.2e}")
  print("advice:")
  for line in diagnostics.advise(history) or ["nothing to report"]:
    print(f"  - {line}")
  if args.dashboard:
    progress.stage("drawing the dashboard")
    fig = diagnostics.plot_dashboard(history, log_loss=True)
    fig.suptitle(f"lrtools train: {args.model} on digits, {args.optimizer}, {args.schedule or 'constant'} schedule")
    fig.savefig(args.dashboard, dpi=90)
    print(f"wrote {args.dashboard}")
  if args.tensorboard:
    print(f"wrote TensorBoard events to {args.tensorboard}")
  progress.stage("done")
  return 0


def _seed(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = -1
  if not 0 <= value <= INT32_MAX:
    raise argparse.ArgumentTypeError(f"must be a non-negative integer that fits int32, got {text!r}")
  return value


def _learning_rate(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not (value > 0 and value < float("inf")):
    raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
  return value


def add_parser(commands) -> None:
  parser = commands.add_parser(
      "train", help="train a default model on digits and draw the training dashboard", allow_abbrev=False,
      description="Trains an MLP or CNN on the embedded digits dataset with a monitored optimizer, records "
      "losses, accuracies, update:weight ratios, activation and gradient histograms per epoch, draws the "
      "dashboard and prints advice. Schedule parameters follow --schedule NAME as --name value.",
      epilog="example: lrtools train --model mlp --optimizer momentum --schedule one_cycle --max-value 0.1 "
      "--epochs 10 --dashboard dashboard.png")
  parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
  parser.add_argument("--optimizer", choices=OPTIMIZERS, default="momentum")
  parser.add_argument("--schedule", choices=sorted(LR_SCHEDULES), default=None,
                      help="learning-rate schedule (default: constant --learning-rate)")
  parser.add_argument("--learning-rate", type=_learning_rate, default=None,
                      help="constant learning rate without --schedule (default per optimizer, e.g. 0.05 for momentum)")
  parser.add_argument("--momentum", type=float, default=0.9, help="momentum, or b1 of adam/yogi (default 0.9)")
  parser.add_argument("--epochs", type=step_count, default=10)
  parser.add_argument("--batch-size", type=step_count, default=64)
  parser.add_argument("--seed", type=_seed, default=0)
  parser.add_argument("--dashboard", help="write the dashboard to this PNG file")
  parser.add_argument("--tensorboard", help="also write TensorBoard event files to this directory (tensorboardX)")
  parser.add_argument("--quiet", action="store_true", help="no progress output")
  parser.set_defaults(run=run, parser=parser, takes_extra=True)
