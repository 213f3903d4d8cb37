"""The README's Python examples run as written, and its command lines are valid `lrtools` commands."""

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from lrtools import cli  # noqa: E402

README = (Path(__file__).parents[1] / "README.md").read_text()


BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SUGGESTION = re.compile(r"^  (steepest|minimum|valley) +(\S+)", flags=re.M)


def fresh_python(args, cwd, timeout=180) -> subprocess.CompletedProcess:
  """``python args`` in a fresh interpreter, as a user runs it: JAX's defaults (no test-leg settings
  inherited through the environment), a non-interactive matplotlib backend."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "LRTOOLS_TEST", "XLA_FLAGS"))}
  env["MPLBACKEND"] = "Agg"
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope="module")
def block_runs(tmp_path_factory):
  """Each README python block run on its own, in its own fresh interpreter: ``[(block, completed)]``."""
  cwd = tmp_path_factory.mktemp("readme")
  return [(block, fresh_python(["-c", block], cwd)) for block in BLOCKS]


def test_readme_python_blocks_run_on_their_own(block_runs):
  assert len(block_runs) >= 2
  for block, done in block_runs:
    assert done.returncode == 0, f"{block[:200]}\n--- stderr:\n{done.stderr[-3000:]}"


def test_readme_snippet_and_find_lr_print_the_same_suggestions(block_runs, tmp_path):
  snippet = [done for block, done in block_runs if "lr_range_test(" in block]
  assert len(snippet) == 1
  printed = dict(SUGGESTION.findall(snippet[0].stdout))
  cli_run = fresh_python(["-m", "lrtools.cli", "find-lr", "--quiet"], tmp_path)  # the README's first command
  assert cli_run.returncode == 0, cli_run.stderr
  from_cli = dict(SUGGESTION.findall(cli_run.stdout))
  assert set(printed) == {"steepest", "minimum", "valley"}, snippet[0].stdout
  assert printed == from_cli, (snippet[0].stdout, cli_run.stdout)
  # The same run: the same steps and stop reason.
  steps = re.search(r"range test: (\d+/\d+ steps) \((\w+)", snippet[0].stdout)
  assert steps and f"{steps.group(1)} ({steps.group(2)}" in cli_run.stdout


def test_readme_starts_with_the_two_commands():
  first = re.search(r"```\w*\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
  assert len(first) == 2
  assert first[0].startswith("pip install") and "lrtools " in first[0] and "--out" in first[0]
  assert first[1].startswith("pip install") and "pytest" in first[1]


def readme_commands():
  """Every ``lrtools ...`` command of the README's bash blocks, split as a shell would (comments dropped)."""
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
    for line in block.splitlines():
      for part in line.split("&&"):
        words = shlex.split(part, comments=True)
        if words[:1] == ["lrtools"]:
          commands.append(words[1:])
  return commands


@pytest.fixture
def quiet_env(monkeypatch):
  # find-lr sets XLA_FLAGS for the backend it starts: keep it from leaking into later tests.
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


def test_readme_commands_parse():
  commands = readme_commands()
  assert {c[0] for c in commands} == {"find-lr", "schedule", "train", "search"}
  for argv in commands:
    args, extra = cli.build_parser().parse_known_args(argv)
    assert args.takes_extra or not extra, argv


def test_readme_schedule_commands_run(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  for argv in (c for c in readme_commands() if c[0] == "schedule"):
    assert cli.main(argv) == 0, argv
    printed = capsys.readouterr().out
    assert printed.startswith(f"{argv[1]}: ") and "first" in printed
    if "--out" in argv:
      assert (tmp_path / argv[argv.index("--out") + 1]).read_bytes()[:4] == b"\x89PNG"


def test_readme_first_command_prints_the_suggestions(tmp_path, monkeypatch, quiet_env):
  monkeypatch.chdir(tmp_path)
  argv = readme_commands()[0]
  assert argv == ["find-lr", "--out", "lr_finder.png"]
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    assert cli.main(argv) == 0
  lines = out.getvalue().splitlines()
  # What the README says it runs: the MLP on digits, SGD with momentum, 1e-7 -> 10 over 100 steps.
  assert re.fullmatch(r"range test on digits: mlp, momentum, lr 1e-07 -> 10, \d+/100 steps \((diverged|completed)\)",
                      lines[0]), lines[0]
  for line, method in zip(lines[1:4], ("steepest", "minimum", "valley")):
    assert re.fullmatch(rf"  {method:<9} \S+", line) and float(line.split()[1]) > 0, line
  assert lines[4:] == ["wrote lr_finder.png"]
  assert (tmp_path / "lr_finder.png").read_bytes()[:4] == b"\x89PNG"
  assert "compiling the sweep" in err.getvalue()
