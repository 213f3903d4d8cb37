"""`lrtools find-lr`: the README's main job, end to end on the embedded digits."""

import json
import subprocess
import sys

import pytest

from lrtools import cli


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


def test_console_script_with_compilation_cache(tmp_path):
  cache = tmp_path / "cache"
  cmd = [sys.executable, "-m", "lrtools.cli", "find-lr", "--steps", "20", "--cache-dir", str(cache)]
  result = subprocess.run(cmd, capture_output=True, text=True, check=True)
  assert "valley" in result.stdout and "compiling the sweep" in result.stderr
  assert any(cache.iterdir())  # the compiled programs were kept for the next run


@pytest.mark.parametrize("bad", [["--optimizer", "lion"], ["--model", "resnet"]])
def test_find_lr_rejects_unknown_choices(bad):
  with pytest.raises(SystemExit):
    cli.main(["find-lr", *bad])


def test_plot_falls_back_to_this_process_when_the_worker_fails(tmp_path):
  import numpy as np

  import lrtools as lrt
  lrs = np.logspace(-5, 0, 40)
  loss = 2 - np.tanh(np.log10(lrs) + 3)
  result = lrt.RangeTestResult(lrs, loss, loss, 40, False)
  broken = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE)
  cli._plot_range_test(result, str(tmp_path / "fallback.png"), "t", broken)
  assert (tmp_path / "fallback.png").read_bytes()[:4] == b"\x89PNG"
