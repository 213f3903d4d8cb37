"""`lrtools search`: random search and Optuna workers on the embedded digits, end to end, and its usage errors."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from lrtools import cli  # noqa: E402
from lrtools.cli import _search  # noqa: E402
from lrtools.search import choice, int_uniform, log_uniform, uniform  # noqa: E402

TINY = ["--steps", "5", "--batch-size", "16", "--quiet"]


def table_scores(printed: str) -> list[float]:
  """The score column of the printed table (rank, trial, score, ...)."""
  rows = [line.split() for line in printed.splitlines() if re.match(r"\s+\d+\s+\d+\s", line)]
  return [float(row[2]) for row in rows]


@pytest.fixture(autouse=True)
def close_figures():
  yield
  import matplotlib.pyplot as plt
  plt.close("all")


def test_random_search_prints_table_and_plots(tmp_path, capsys):
  out = tmp_path / "search.png"
  argv = ["search", "--trials", "5", "--chunk-size", "2", "--optimizer", "adam", "--param",
          "learning_rate=log:1e-4:1e-1", "--param", "b1=choice:0.8,0.9", "--metric", "accuracy", "--out", str(out)]
  assert cli.main(argv + TINY) == 0
  printed = capsys.readouterr().out
  assert printed.startswith("random search on digits: 5 trials, mlp, adam, 5 steps, validation accuracy")
  scores = table_scores(printed)
  assert len(scores) == 5 and scores == sorted(scores, reverse=True)  # accuracy: best (highest) first
  best = [line for line in printed.splitlines() if line.startswith("best: ")]
  assert all(0.0 <= s <= 1.0 for s in scores) and len(best) == 1 and "learning_rate=" in best[0] and "b1=" in best[0]
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_optuna_workers_share_a_sqlite_study_and_report(tmp_path, capsys):
  pytest.importorskip("optuna")
  url = f"sqlite:///{tmp_path / 'study.db'}"
  worker = ["search", "--storage", url, "--study", "digits", "--chunk-size", "2"] + TINY
  assert cli.main(worker + ["--trials", "3"]) == 0
  assert "3 completed trials (3 by this worker)" in capsys.readouterr().out
  assert cli.main(worker + ["--trials", "2", "--sampler", "random"]) == 0  # a second worker joins
  second = capsys.readouterr().out
  assert "5 completed trials (2 by this worker)" in second and len(table_scores(second)) == 5
  out = tmp_path / "report.png"
  assert cli.main(["search", "--storage", url, "--study", "digits", "--report", "--top", "2", "--out", str(out),
                   "--quiet"]) == 0
  report = capsys.readouterr().out
  assert "5 completed trials" in report and "... 3 more" in report
  assert table_scores(report) == table_scores(second)[:2]  # the master sees what the workers recorded
  assert out.read_bytes()[:4] == b"\x89PNG"
  assert cli.main(["search", "--storage", url, "--study", "other", "--report"]) == 2
  assert "--study 'other': no such study" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [
    ("learning_rate", "must be NAME=KIND:ARGS"),
    ("learning_rate=lg:1e-3:1", "must be NAME=KIND:ARGS"),
    ("learning_rate=log:a:1", "not a number"),
    ("learning_rate=log:1e-3", "exactly LOW:HIGH"),
    ("learning_rate=log:1:0.1", "needs low < high"),
    ("learning_rate=log:0:1", "must be positive"),
    ("momentum=choice:", "must be NAME=KIND:ARGS"),
    ("lr=log:1e-3:1", "momentum has no hyperparameter 'lr'"),
])
def test_bad_param_exits_2_naming_option_and_value(capsys, value, message):
  with pytest.raises(SystemExit) as info:
    cli.main(["search", "--param", value])
  err = capsys.readouterr().err
  assert info.value.code == 2 and f"argument --param: {value!r}" in err and message in err


@pytest.mark.parametrize("argv, message", [
    (["--param", "momentum=uniform:0.5:0.9", "--param", "momentum=uniform:0.1:0.2"], "given twice"),
    (["--report"], "--report reads a shared study"),
    (["--storage", "sqlite:///x.db"], "--storage needs --study"),
    (["--study", "s"], "--study needs --storage"),
    (["--trials", "0"], "argument --trials"),
    (["--chunk-size", "-1"], "argument --chunk-size"),
    (["--steps", "1e2"], "argument --steps"),
    (["--sampler", "cmaes"], "argument --sampler"),
])
def test_usage_errors_exit_2(capsys, argv, message):
  with pytest.raises(SystemExit) as info:
    cli.main(["search", *argv])
  assert info.value.code == 2 and message in capsys.readouterr().err


def test_library_errors_exit_2(capsys):
  assert cli.main(["search", "--seed", "-1", "--quiet"]) == 2
  assert "`load_digits(seed=...)`" in capsys.readouterr().err
  pytest.importorskip("optuna")
  assert cli.main(["search", "--storage", "nodriver://x", "--study", "s", "--quiet"]) == 2
  assert "--storage 'nodriver://x'" in capsys.readouterr().err


def test_parse_param_kinds_and_default_space():
  assert _search.parse_param("learning_rate=log:1e-5:1") == ("learning_rate", log_uniform(1e-5, 1.0))
  assert _search.parse_param("m=uniform:0.5:0.99") == ("m", uniform(0.5, 0.99))
  assert _search.parse_param("n=int:1:4") == ("n", int_uniform(1, 4))
  assert _search.parse_param("b2=choice:0.99,0.999") == ("b2", choice([0.99, 0.999]))
  assert _search.parse_param("k=choice:1,2") == ("k", choice([1, 2]))  # integers stay integers
  assert _search.searchable("momentum") == ["learning_rate", "momentum", "weight_decay"]
  parser = cli.build_parser()
  args = parser.parse_args(["search"])
  assert _search.build_space(args) == {"learning_rate": log_uniform(1e-5, 1.0), "momentum": uniform(0.5, 0.99)}
  args = parser.parse_args(["search", "--optimizer", "adam"])
  assert _search.build_space(args) == {"learning_rate": log_uniform(1e-5, 1.0)}



def test_table_shows_optuna_trial_numbers():
  table = "rank  trial  score  lr\n   1      2    0.1  0.3\n   2      0    0.5  0.2\n... 1 more"
  assert _search._numbered(table, [5, 17, 1234]).splitlines() == [
      "rank  trial  score  lr", "   1   1234    0.1  0.3", "   2      5    0.5  0.2", "... 1 more"]
  assert _search._numbered(table, [0, 1, 2]) == table and _search._numbered(table, None) == table
