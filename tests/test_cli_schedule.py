"""The `lrtools schedule` command and plot_schedule."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lrtools as lrt  # noqa: E402
from lrtools import cli  # noqa: E402


@pytest.mark.parametrize("name,params", [
    ("constant", ["--value", "0.1"]),
    ("step", ["--init-value", "0.1", "--step-size", "30"]),
    ("multistep", ["--init-value", "0.1", "--milestones", "[30, 60]"]),
    ("exponential", ["--init-value", "0.1", "--rate", "0.01"]),
    ("inverse_time", ["--init-value", "0.1", "--rate", "0.01"]),
    ("polynomial", ["--init-value", "0.1", "--end-value", "0.0", "--decay-steps", "80"]),
    ("cosine", ["--init-value", "0.1", "--decay-steps", "80"]),
    ("cyclical", ["--base-value", "0.001", "--max-value", "0.1", "--step-size-up", "20", "--mode", "exp_range",
                  "--gamma", "0.99"]),
    ("cyclical_momentum", ["--base-momentum", "0.85", "--max-momentum", "0.95", "--step-size-up", "20"]),
    ("one_cycle", ["--total-steps", "100", "--max-value", "0.1"]),
    ("one_cycle_momentum", ["--total-steps", "100"]),
    ("sgdr", ["--max-value", "0.1", "--cycle-steps", "10", "--cycle-mult", "2"]),
])
def test_every_family_prints_a_table_and_writes_a_png(tmp_path, capsys, name, params):
  out = tmp_path / f"{name}.png"
  assert cli.main(["schedule", name, *params, "--steps", "100", "--warmup-steps", "5", "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "first" in printed and "max" in printed and "min" in printed
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_parameter_value_is_reported(capsys):
  assert cli.main(["schedule", "sgdr", "--max-value", "0.1", "--cycle-steps", "0"]) == 2
  assert "cycle_steps" in capsys.readouterr().err


def test_name_equals_value_form(capsys):
  assert cli.main(["schedule", "cosine", "--init-value=0.1", "--decay-steps=10", "--steps", "20"]) == 0
  assert "first 0.1" in capsys.readouterr().out


def test_non_numeric_value_names_the_argument(capsys):
  assert cli.main(["schedule", "cosine", "--init-value", "abc", "--decay-steps", "10"]) == 2
  assert "init_value" in capsys.readouterr().err


def test_unknown_parameter_is_rejected():
  with pytest.raises(SystemExit, match="no parameter 'foo'"):
    cli.main(["schedule", "sgdr", "--foo", "1"])


def test_console_script_entry_point(tmp_path):
  result = subprocess.run([sys.executable, "-m", "lrtools.cli", "schedule", "cosine", "--init-value", "1.0",
                           "--decay-steps", "10", "--steps", "20"], capture_output=True, text=True, check=True)
  assert "first 1" in result.stdout and "last 0" in result.stdout


def test_plot_schedule_draws_the_values():
  ax = lrt.plotting.plot_schedule(lrt.cosine_decay_schedule(1.0, 10), 20, label="cos", log=False)
  y = ax.get_lines()[0].get_ydata()
  np.testing.assert_allclose(y, lrt.cosine_decay_schedule(1.0, 10)(np.arange(20)))
  with pytest.raises(ValueError, match="num_steps"):
    lrt.plotting.plot_schedule(lrt.constant_schedule(1.0), 0)
