"""Trials sharded over 8 (forced host) devices give the scores of one device (coarse_to_fine and refine_lr
go through the same ``evaluate_configs``). The device count is fixed when
JAX starts, so the sharded run happens in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from lrtools.search import log_uniform, random_search, uniform

# Shared by this process (one device) and the subprocess (eight): a real, tiny training run per trial.
OBJECTIVE = textwrap.dedent("""
  import jax, jax.numpy as jnp, numpy as np
  import lrtools as lrt

  RNG = np.random.default_rng(0)
  XS = RNG.normal(size=(3, 8, 4))
  YS = XS @ RNG.normal(size=4)

  def objective(config, key, num_steps=5):
    dtype = jnp.result_type(float)
    loss = lambda p, b: jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2)
    batches = {"x": jnp.asarray(XS, dtype), "y": jnp.asarray(YS, dtype)}
    params = {"w": jax.random.normal(key, (4,), dtype)}
    opt = lrt.momentum(config["learning_rate"], config["momentum"])
    res = lrt.train_loop(loss, opt, params, opt.init(params), batches, num_steps=num_steps)
    return loss(res.params, {"x": batches["x"][0], "y": batches["y"][0]})
""")
SPACE = {"learning_rate": log_uniform(1e-3, 0.3), "momentum": uniform(0.0, 0.9)}

SHARDED = OBJECTIVE + textwrap.dedent("""
  import json, sys
  if sys.argv[1] == "1":
    jax.config.update("jax_enable_x64", True)
  if sys.argv[2] == "1":
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
  from lrtools.search import _sharding, log_uniform, random_search, uniform
  assert len(jax.devices()) == 8, jax.devices()
  spans = []
  gather = _sharding.gather
  def recording(x):  # every chunk's scores come back from all eight devices
    spans.append(len(x.sharding.device_set))
    return gather(x)
  _sharding.gather = recording
  space = {"learning_rate": log_uniform(1e-3, 0.3), "momentum": uniform(0.0, 0.9)}
  key = jax.random.key(7)
  a = random_search(objective, space, 10, key=key, chunk_size=5)  # chunks of 8: 2 chunks, 6 padded trials
  b = random_search(objective, space, 10, key=key, vmap_size=2)   # one chunk of 16, groups of 2 per device
  print(json.dumps({"spans": spans, "a": a.scores.tolist(), "b": b.scores.tolist(),
                    "lr": a.configs["learning_rate"].tolist()}))
""")


def test_sharded_equals_unsharded():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  x64, strict = jax.config.jax_enable_x64, jax.config.jax_numpy_dtype_promotion == "strict"
  proc = subprocess.run([sys.executable, "-c", SHARDED, str(int(x64)), str(int(strict))], env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert got["spans"] == [8, 8, 8]  # a: two chunks, b: one

  scope = {}
  exec(OBJECTIVE, scope)  # noqa: S102 - the same objective, on this process's single device
  objective, key = scope["objective"], jax.random.key(7)
  assert len(jax.devices()) == 1
  one = random_search(objective, SPACE, 10, key=key)
  np.testing.assert_array_equal(got["lr"], one.configs["learning_rate"])  # the same trials
  assert len(set(np.round(one.scores, 5).tolist())) == 10
  tol = 1e-6 if x64 else 1e-5
  for name in ("a", "b"):
    np.testing.assert_allclose(got[name], one.scores, rtol=tol, atol=tol, err_msg=name)
