"""The `lrtools schedule` command (strict parameter parsing, exit codes) and plot_schedule."""

import ast
import contextlib
import io
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lrtools as lrt  # noqa: E402
from lrtools import cli  # noqa: E402

@pytest.fixture(autouse=True)
def close_figures():
  yield
  import matplotlib.pyplot as plt
  plt.close("all")  # figures drawn without an Axes stay open in pyplot (and warn past 20)


FAMILIES = {  # a valid parameter set of every family in the CLI's table
    "constant": ["--value", "0.1"],
    "step": ["--init-value", "0.1", "--step-size", "30"],
    "multistep": ["--init-value", "0.1", "--milestones", "[30, 60]"],
    "exponential": ["--init-value", "0.1", "--rate", "0.01"],
    "inverse_time": ["--init-value", "0.1", "--rate", "0.01"],
    "polynomial": ["--init-value", "0.1", "--end-value", "0.0", "--decay-steps", "80"],
    "cosine": ["--init-value", "0.1", "--decay-steps", "80"],
    "cyclical": ["--base-value", "0.001", "--max-value", "0.1", "--step-size-up", "20", "--mode", "exp_range",
                 "--gamma", "0.99"],
    "cyclical_momentum": ["--base-momentum", "0.85", "--max-momentum", "0.95", "--step-size-up", "20"],
    "one_cycle": ["--total-steps", "100", "--max-value", "0.1", "--three-phase", "true"],
    "one_cycle_momentum": ["--total-steps", "100"],
    "sgdr": ["--max-value", "0.1", "--cycle-steps", "10", "--cycle-mult", "2"],
    "wsd": ["--peak-value", "0.1", "--total-steps", "100", "--decay-shape", "linear"],
}


def run_cli(argv):
  """``(exit code, stdout, stderr)`` of ``lrtools ARGV`` run in this process (SystemExit included)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = cli.main(argv)
    except SystemExit as e:
      code = e.code
  return code, out.getvalue(), err.getvalue()


def printed_values(stdout):
  """``{"first": ..., "last": ..., "min": ..., "max": ...}`` as printed (``.6g`` strings)."""
  words = stdout.split()
  return {key: words[words.index(key) + 1] for key in ("first", "last", "min", "max")}


def test_the_table_has_every_family():
  assert sorted(FAMILIES) == sorted(cli._schedule.SCHEDULES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_prints_a_table_and_writes_a_png(tmp_path, capsys, name):
  out = tmp_path / f"{name}.png"
  assert cli.main(["schedule", name, *FAMILIES[name], "--steps", "100", "--warmup-steps", "5", "--out",
                   str(out)]) == 0
  printed = capsys.readouterr().out
  assert "first" in printed and "max" in printed and "min" in printed
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_printed_values_are_the_schedules():
  code, out, _ = run_cli(["schedule", "sgdr", "--max-value", "0.1", "--cycle-steps", "10", "--min-value",
                          "0.01", "--steps", "25"])
  values = np.asarray(lrt.sgdr_schedule(0.1, 10, min_value=0.01)(np.arange(25, dtype=np.int32)))
  assert code == 0
  assert printed_values(out) == {"first": f"{values[0]:.6g}", "last": f"{values[-1]:.6g}",
                                 "min": f"{values.min():.6g}", "max": f"{values.max():.6g}"}


@pytest.mark.parametrize("raw", ["true", "True", "TRUE", "false", "False", "fAlSe"])
def test_boolean_parameters_are_true_or_false(raw):
  # `--three-phase false` used to mean True (a non-empty string). Step 49 differs between the two forms.
  code, out, err = run_cli(["schedule", "one_cycle", "--total-steps", "100", "--max-value", "0.1",
                            "--three-phase", raw, "--steps", "50"])
  assert code == 0, err
  flag = raw.lower() == "true"
  expected = float(lrt.one_cycle_schedule(100, 0.1, three_phase=flag)(49))
  other = float(lrt.one_cycle_schedule(100, 0.1, three_phase=not flag)(49))
  assert f"{expected:.6g}" != f"{other:.6g}"
  assert printed_values(out)["last"] == f"{expected:.6g}"


@given(st.one_of(st.sampled_from(["1", "0", "yes", "no", "t", "f", "", "None", "'true'", "true ", "1.0"]),
                 st.text()).filter(lambda s: s.lower() not in ("true", "false")))
def test_boolean_parameters_reject_anything_else(raw):
  code, _, err = run_cli(["schedule", "one_cycle", "--total-steps", "100", "--max-value", "0.1",
                          f"--three-phase={raw}"])
  assert code == 2
  assert f"--three-phase must be true or false, got {raw!r}" in err


BAD_NUMBERS = ["True", "False", "abc", "None", "[0.1, 0.2]", "(1,)", "1j", "{}", "2147483648e300", "b'1'"]


def _numeric_options():
  """``(family, option)`` for every numeric parameter given in FAMILIES (not flags, strings or optionals)."""
  for name, params in FAMILIES.items():
    factory = cli._schedule.SCHEDULES[name]
    for option in params[::2]:
      param = option[2:].replace("-", "_")
      if param not in ("mode", "three_phase", "decay_shape", "milestones"):
        yield name, option, factory


def test_library_value_errors_exit_2_with_the_message():
  # Every numeric parameter of every family, every kind of bad value (a finite table: all of it, not a sample).
  cases = [(case, bad) for case in _numeric_options() for bad in BAD_NUMBERS]
  assert {case[0] for case, _ in cases} == set(FAMILIES)  # every family has a numeric parameter here
  for (name, option, factory), bad in cases:
    params = list(FAMILIES[name])
    params[params.index(option) + 1] = bad
    code, out, err = run_cli(["schedule", name, *params, "--steps", "3"])
    param = option[2:].replace("-", "_")
    assert code == 2 and out == "", (name, option, bad)
    assert err.startswith(f"lrtools schedule: `{factory.__name__}(") and f"{param}=" in err, err


@given(st.text())
def test_any_text_value_exits_0_or_2(raw):
  code, out, err = run_cli(["schedule", "sgdr", "--max-value", "0.1", f"--cycle-steps={raw}", "--steps", "3"])
  assert code in (0, 2) and "Traceback" not in err
  if code == 0:  # only a positive int32 integer is a cycle length
    assert 1 <= float(ast.literal_eval(raw)) <= 2**31 - 1 and "first 0.1" in out
  else:
    assert "cycle_steps" in err


@pytest.mark.parametrize("params, name", [
    (["--init-value", "0.1", "--milestones", "[30, 2147483648]"], "milestones"),
    (["--init-value", "0.1", "--milestones", "[[30, 60]]"], "milestones"),
    (["--init-value", "0.1", "--milestones", "[60, 30]"], "milestones"),
    (["--init-value", "0.1", "--milestones", "True"], "milestones"),
])
def test_bad_milestones_exit_2(params, name):
  code, _, err = run_cli(["schedule", "multistep", *params])
  assert code == 2 and f"`multistep_schedule({name}=...)`" in err


@pytest.mark.parametrize("option, value", [("--mode", "triangular3"), ("--mode", "'triangular'")])
def test_strings_are_taken_as_written(option, value):
  code, _, err = run_cli(["schedule", "cyclical", "--base-value", "0.01", "--max-value", "0.1",
                          "--step-size-up", "10", option, value])
  assert code == 2 and f"got mode={value!r}" in err


def test_bad_parameter_value_is_reported(capsys):
  assert cli.main(["schedule", "sgdr", "--max-value", "0.1", "--cycle-steps", "0"]) == 2
  assert "cycle_steps" in capsys.readouterr().err


def test_missing_parameter_is_reported():
  code, _, err = run_cli(["schedule", "sgdr", "--max-value", "0.1"])
  assert code == 2 and "--cycle-steps" in err


def test_name_equals_value_form(capsys):
  assert cli.main(["schedule", "cosine", "--init-value=0.1", "--decay-steps=10", "--steps", "20"]) == 0
  assert "first 0.1" in capsys.readouterr().out


def test_non_numeric_value_names_the_argument(capsys):
  assert cli.main(["schedule", "cosine", "--init-value", "abc", "--decay-steps", "10"]) == 2
  assert "init_value" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sgdr", "--foo", "1"], "sgdr_schedule has no parameter 'foo'"),
    (["sgdr", "--max-value"], "expected '--name value' pairs, got '--max-value'"),
    (["sgdr", "0.1"], "expected '--name value' pairs, got '0.1'"),
    (["cosine", "--init-value", "0.1", "--init-value=0.2", "--decay-steps", "5"], "--init-value is given twice"),
    (["cosine", "--init-value", "0.1", "--decay-steps", "5", "--steps", "0"], "argument --steps"),
    (["cosine", "--init-value", "0.1", "--decay-steps", "5", "--steps", "2147483648"], "argument --steps"),
    (["cosine", "--init-value", "0.1", "--decay-steps", "5", "--steps", "1.5"], "argument --steps"),
    (["wsd", "--peak-value", "0.1", "--total-steps", "9", "--warmup_steps", "1", "--warmup-steps", "2"],
     "--warmup-steps is given twice"),
])
def test_usage_errors_exit_2(argv, message):
  code, out, err = run_cli(["schedule", *argv])
  assert code == 2 and out == "" and message in err


def test_no_abbreviations_eat_schedule_parameters():
  # With argparse's prefix matching, `--warmup` would have been taken as the command's --warmup-steps.
  code, _, err = run_cli(["schedule", "cosine", "--init-value", "0.1", "--decay-steps", "5", "--warmup", "3"])
  assert code == 2 and "no parameter 'warmup'" in err


def test_wsd_warmup_steps_is_its_own_parameter():
  code, out, _ = run_cli(["schedule", "wsd", "--peak-value", "0.1", "--total-steps", "100", "--warmup-steps",
                          "10", "--steps", "100"])
  own = np.asarray(lrt.wsd_schedule(0.1, 100, 10)(np.arange(100, dtype=np.int32)))
  wrapped = np.asarray(lrt.warmup_schedule(lrt.wsd_schedule(0.1, 100), 10)(np.arange(100, dtype=np.int32)))
  assert code == 0 and f"{own[-1]:.6g}" != f"{wrapped[-1]:.6g}"
  assert printed_values(out) == {"first": f"{own[0]:.6g}", "last": f"{own[-1]:.6g}", "min": f"{own.min():.6g}",
                                 "max": f"{own.max():.6g}"}


def test_warmup_steps_wraps_the_other_families():
  code, out, _ = run_cli(["schedule", "cosine", "--init-value", "0.1", "--decay-steps", "20", "--warmup-steps",
                          "5", "--steps", "10"])
  values = np.asarray(lrt.warmup_schedule(lrt.cosine_decay_schedule(0.1, 20), 5)(np.arange(10, dtype=np.int32)))
  assert code == 0 and printed_values(out)["first"] == "0" and printed_values(out)["last"] == f"{values[-1]:.6g}"


def test_console_script_entry_point():
  result = subprocess.run([sys.executable, "-m", "lrtools.cli", "schedule", "cosine", "--init-value", "1.0",
                           "--decay-steps", "10", "--steps", "20"], capture_output=True, text=True, check=True)
  assert "first 1" in result.stdout and "last 0" in result.stdout


def test_console_script_exit_code_2_without_traceback():
  result = subprocess.run([sys.executable, "-m", "lrtools.cli", "schedule", "one_cycle", "--total-steps", "100",
                           "--max-value", "0.1", "--three-phase", "false", "--pct-start", "True"],
                          capture_output=True, text=True)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "`one_cycle_schedule(pct_start=...)`" in result.stderr and "pct_start=True" in result.stderr


# ------------------------------------------------------------------------------------------ plot_schedule


def test_plot_schedule_draws_the_values():
  ax = lrt.plotting.plot_schedule(lrt.cosine_decay_schedule(1.0, 10), 20, label="cos", log=False)
  x, y = ax.get_lines()[0].get_xdata(), ax.get_lines()[0].get_ydata()
  np.testing.assert_array_equal(x, np.arange(20))
  np.testing.assert_allclose(y, lrt.cosine_decay_schedule(1.0, 10)(np.arange(20)), rtol=0, atol=0)
  assert ax.get_legend().get_texts()[0].get_text() == "cos" and ax.get_yscale() == "linear"


@pytest.mark.parametrize("num_steps", [5, np.int64(5), jnp.int32(5), 5.0, np.array(5)])
def test_plot_schedule_accepts_integers(num_steps):
  ax = lrt.plotting.plot_schedule(lrt.constant_schedule(1.0), num_steps, log=True)
  assert ax.get_lines()[0].get_ydata().shape == (5,) and ax.get_yscale() == "log"


@given(st.one_of(st.booleans(), st.integers(max_value=0), st.integers(min_value=2**31),
                 st.floats().filter(lambda v: not (np.isfinite(v) and v == int(v) and v > 0)), st.text(),
                 st.none(), st.lists(st.integers(1, 9), min_size=1, max_size=3), st.just(np.array([5]))))
def test_plot_schedule_rejects_bad_num_steps(num_steps):
  with pytest.raises(ValueError, match=r"`plot_schedule\(num_steps=\.\.\.\)` .*got num_steps="):
    lrt.plotting.plot_schedule(lrt.constant_schedule(1.0), num_steps)


def test_plot_schedule_rejects_traced_num_steps():
  with pytest.raises(ValueError, match=r"`plot_schedule\(num_steps=\.\.\.\)` must be concrete"):
    jax.jit(lambda n: lrt.plotting.plot_schedule(lrt.constant_schedule(1.0), n))(5)


@pytest.mark.parametrize("kwargs, name", [
    ({"log": "yes"}, "log"), ({"log": 1}, "log"), ({"log": None}, "log"), ({"label": 3}, "label"),
    ({"ax": "axes"}, "ax"), ({"schedule": 0.1}, "schedule"),
])
def test_plot_schedule_rejects_bad_arguments(kwargs, name):
  args = {"schedule": lrt.constant_schedule(1.0), "num_steps": 5, **kwargs}
  with pytest.raises(ValueError, match=rf"`plot_schedule\({name}=\.\.\.\)` .*got {name}="):
    lrt.plotting.plot_schedule(**args)
