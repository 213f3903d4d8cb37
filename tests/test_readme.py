"""The README's Python examples run as written."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
  assert blocks
  session = {}  # the README reads as one session: later blocks use names from earlier ones
  for block in blocks:
    exec(compile(block, "README.md", "exec"), session)


def test_readme_starts_with_the_two_commands():
  first = re.search(r"```\w*\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
  assert len(first) == 2
  assert first[0].startswith("pip install") and "lrtools " in first[0] and "--out" in first[0]
  assert first[1].startswith("pip install") and "pytest" in first[1]
