"""`lrtools find-lr`: the README's main job, end to end on the embedded digits."""

import json
import os
import pickle
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lrtools as lrt  # noqa: E402
from lrtools import cli  # noqa: E402
from lrtools.cli import _plot_worker  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
  yield
  import matplotlib.pyplot as plt
  plt.close("all")  # figures drawn without an Axes stay open in pyplot (and warn past 20)


@pytest.fixture(autouse=True)
def restore_xla_flags(monkeypatch):
  # find-lr sets XLA_FLAGS for the backend it starts: keep it from leaking into later tests.
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


def test_find_lr_prints_suggestions_and_writes_png_and_json(tmp_path, capsys):
  out, js = tmp_path / "lr.png", tmp_path / "lr.json"
  assert cli.main(["find-lr", "--steps", "40", "--start", "1e-5", "--end", "10", "--out", str(out), "--json",
                   str(js), "--quiet"]) == 0
  printed = capsys.readouterr().out
  for method in ("steepest", "minimum", "valley"):
    assert method in printed
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  data = json.loads(js.read_text())
  assert set(data["suggestions"]) == {"steepest", "minimum", "valley"} and len(data["lrs"]) == 40


def test_find_lr_repeats_cnn_adam_validation(tmp_path, capsys):
  out = tmp_path / "cnn.png"
  assert cli.main(["find-lr", "--model", "cnn", "--optimizer", "adam", "--repeats", "2", "--steps", "30",
                   "--validation", "--quiet", "--out", str(out)]) == 0
  assert "over 2 seeds" in capsys.readouterr().out and out.exists()


def test_find_lr_reports_bad_arguments(capsys):
  assert cli.main(["find-lr", "--start", "1.0", "--end", "0.1", "--quiet"]) == 2
  assert "start_lr" in capsys.readouterr().err
  assert cli.main(["find-lr", "--dataset", "fashion-mnist", "--data-path", "/nonexistent", "--quiet"]) == 2
  assert "nonexistent" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "`load_digits(seed=...)`"),
    ("--seed", "2147483648", "`load_digits(seed=...)`"),  # fits no int32: jax.random.key would overflow
    ("--batch-size", "0", "`batches(batch_size=...)`"),
    ("--repeats", "0", "num_repeats"),
    ("--smoothing", "nan", "smoothing"),
])
def test_find_lr_library_value_errors_exit_2(capsys, option, value, message):
  assert cli.main(["find-lr", option, value, "--steps", "5", "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("lrtools find-lr: ") and message in err


@pytest.mark.parametrize("value", ["0", "-3", "2147483648", "1e2", "ten"])
def test_find_lr_steps_must_fit_int32(capsys, value):
  with pytest.raises(SystemExit) as info:
    cli.main(["find-lr", "--steps", value])
  assert info.value.code == 2 and "argument --steps: must be a positive integer" in capsys.readouterr().err


def test_find_lr_fashion_mnist_needs_a_data_path(capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(["find-lr", "--dataset", "fashion-mnist"])
  assert info.value.code == 2 and "--dataset fashion-mnist needs --data-path" in capsys.readouterr().err


def test_find_lr_rejects_unknown_arguments(capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(["find-lr", "--max-value", "0.1"])
  assert info.value.code == 2 and "unrecognized arguments: --max-value 0.1" in capsys.readouterr().err


def test_console_script_with_compilation_cache(tmp_path):
  cache = tmp_path / "cache"
  cmd = [sys.executable, "-m", "lrtools.cli", "find-lr", "--steps", "20", "--cache-dir", str(cache)]
  result = subprocess.run(cmd, capture_output=True, text=True, check=True)
  assert "valley" in result.stdout and "compiling the sweep" in result.stderr
  assert any(cache.iterdir())  # the compiled programs were kept for the next run


@pytest.mark.parametrize("bad", [["--optimizer", "lion"], ["--model", "resnet"]])
def test_find_lr_rejects_unknown_choices(bad):
  with pytest.raises(SystemExit) as info:
    cli.main(["find-lr", *bad])
  assert info.value.code == 2


# ---------------------------------------------------------------------------------------- the plot worker


def toy_result(num_steps=40):
  lrs = np.logspace(-5, 0, num_steps)
  loss = 2 - np.tanh(np.log10(lrs) + 3)
  return lrt.RangeTestResult(lrs, loss, loss, num_steps, False)


def test_plot_falls_back_to_this_process_when_the_worker_fails(tmp_path):
  broken = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE)
  _plot_worker.draw(toy_result(), str(tmp_path / "fallback.png"), "t", broken)
  assert broken.returncode == 3 and (tmp_path / "fallback.png").read_bytes()[:4] == b"\x89PNG"


def test_worker_draws_the_png(tmp_path):
  worker = _plot_worker.start()
  _plot_worker.draw(toy_result(), str(tmp_path / "worker.png"), "t", worker)
  assert worker.returncode == 0  # so the worker drew it: the fallback runs only after a failure
  assert (tmp_path / "worker.png").read_bytes()[:4] == b"\x89PNG"


def test_worker_sent_nothing_exits_without_drawing(tmp_path):
  worker = _plot_worker.start()
  _plot_worker.stop(worker)
  assert worker.returncode == 0 and not list(tmp_path.iterdir())


def test_worker_never_imports_jax_or_lrtools(tmp_path):
  # The worker's point is to import matplotlib while the main process imports JAX: it must not import JAX too.
  check = ("import runpy, sys; runpy.run_path(sys.argv[1])['serve'](sys.argv[2]); "
           "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'lrtools')); "
           "assert not loaded, loaded")
  request = pickle.dumps((_plot_worker.payload(toy_result()), str(tmp_path / "w.png"), "title"))
  done = subprocess.run([sys.executable, "-c", check, _plot_worker.__file__,
                         lrt.plotting.plot_range_test.__code__.co_filename], input=request, capture_output=True)
  assert done.returncode == 0, done.stderr.decode()
  assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kwargs, name", [
    ({"result": None}, "result"),
    ({"result": np.zeros(3)}, "result"),
    ({"suggestions": "valley"}, "suggestions"),
    ({"suggestions": ("valley", "fastest")}, "suggestions"),
    ({"suggestions": None}, "suggestions"),
    ({"ax": "axes"}, "ax"),
])
def test_plot_range_test_rejects_bad_arguments(kwargs, name):
  args = {"result": toy_result(), **kwargs}
  with pytest.raises(ValueError, match=rf"`plot_range_test\({name}=\.\.\.\)` .*got {name}="):
    lrt.plotting.plot_range_test(**args)


def test_plot_range_test_marks_the_chosen_suggestions():
  ax = lrt.plotting.plot_range_test(toy_result(), suggestions=["valley"])
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels[0] == "loss" and labels[1].startswith("smoothed loss") and len(labels) == 4
  assert labels[2].startswith("valley: ") and labels[3].startswith("stop: ")  # only the chosen rule marked
