"""The examples in the test suite: each is collected through its ``train_test.py`` only.

Examples run as flax's do (``python main.py`` from their folder), so their modules have plain top-level
names (``train``, ``configs.default``, ``train_test``, ...), the same in every example. Before pytest imports
an example's test module, the previous example's modules are dropped from ``sys.modules`` and the example's
folder goes first on ``sys.path``, so every example imports its own.
"""

import sys

_EXAMPLE_MODULES = ("train_test", "train", "main", "configs", "configs.default", "models", "input_pipeline", "plots")


def pytest_ignore_collect(collection_path, config):
  return collection_path.suffix == ".py" and collection_path.name not in ("train_test.py", "conftest.py")


def pytest_pycollect_makemodule(module_path, parent):
  if module_path.name == "train_test.py":
    for name in _EXAMPLE_MODULES:
      sys.modules.pop(name, None)
    sys.path.insert(0, str(module_path.parent))
