"""The `lrtools train` command end to end (dashboard, TensorBoard events, advice) and its usage errors."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")

from tests.test_cli_schedule import run_cli  # noqa: E402


def test_trains_draws_the_dashboard_writes_events_and_advises(tmp_path):
  png, events = tmp_path / "dash.png", tmp_path / "tb"
  code, out, err = run_cli(["train", "--model", "mlp", "--optimizer", "momentum", "--schedule", "one_cycle",
                            "--max-value", "0.1", "--epochs", "2", "--batch-size", "256", "--dashboard", str(png),
                            "--tensorboard", str(events), "--quiet"])
  assert code == 0, err
  assert err == ""  # --quiet
  # ceil(1437 / 256) = 6 steps an epoch
  assert "trained mlp on digits: momentum, one_cycle schedule, 2 epochs (12 steps)" in out
  accuracy = float(out.split("accuracy  train ")[1].split()[0])
  assert 0.5 < accuracy <= 1.0  # two epochs of a one-cycle schedule learn digits
  assert "advice:\n  - " in out
  assert png.stat().st_size > 20_000
  tensorboardx = pytest.importorskip("tensorboardX")
  assert tensorboardx and any(f.startswith("events.out.tfevents") for f in os.listdir(events))


@pytest.mark.parametrize("argv,option", [
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-3"], "--batch-size"),
    (["--seed", "-1"], "--seed"),
    (["--optimizer", "lion"], "--optimizer"),
    (["--model", "resnet"], "--model"),
    (["--learning-rate", "-0.1"], "--learning-rate"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--schedule", "cosine", "--learning-rate", "0.1", "--init-value", "0.1"], "--learning-rate"),
    (["--schedule", "cyclical_momentum"], "--schedule"),
    (["--schedule", "step", "--init-value", "0.1", "--step-size", "0"], "step_size"),
    (["--schedule", "step", "--init-value", "0.1", "--step-size", "10", "--bogus", "1"], "bogus"),
    (["--schedule", "cosine"], "--init-value"),
    (["--init-value", "0.1"], "--init-value"),
    (["--dashboard", "/nonexistent/dir/dash.png"], "--dashboard"),
])
def test_bad_options_exit_2_naming_the_option(argv, option):
  code, out, err = run_cli(["train", "--quiet", *argv])
  assert code == 2
  assert option in err
