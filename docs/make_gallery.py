"""Draws docs/gallery.png: every schedule family on one page. Run: python docs/make_gallery.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lrtools as lrt  # noqa: E402

PANELS = [
    ("step_decay_schedule(0.1, 200, 0.5, 0.01)", lrt.step_decay_schedule(0.1, 200, 0.5, 0.01)),
    ("multistep_schedule(0.1, [300, 600, 800])", lrt.multistep_schedule(0.1, [300, 600, 800])),
    ("exponential_decay_schedule(0.1, 3e-3)", lrt.exponential_decay_schedule(0.1, 3e-3)),
    ("inverse_time_decay_schedule(0.1, 1e-2)", lrt.inverse_time_decay_schedule(0.1, 1e-2)),
    ("polynomial_decay_schedule(0.1, 0.0, 800, 2.0)", lrt.polynomial_decay_schedule(0.1, 0.0, 800, 2.0)),
    ("warmup(cosine_decay_schedule(0.1, 900), 100)",
     lrt.warmup_schedule(lrt.cosine_decay_schedule(0.1, 900), 100)),
    ("cyclical triangular2 (up 100, down 150)", lrt.cyclical_schedule(0.01, 0.1, 100, 150, "triangular2")),
    ("cyclical exp_range (gamma 0.998)", lrt.cyclical_schedule(0.01, 0.1, 100, mode="exp_range", gamma=0.998)),
    ("cyclical_momentum_schedule(0.85, 0.95, 100)", lrt.cyclical_momentum_schedule(0.85, 0.95, 100)),
    ("one_cycle_schedule(1000, 0.1)", lrt.one_cycle_schedule(1000, 0.1)),
    ("one_cycle three_phase, linear", lrt.one_cycle_schedule(1000, 0.1, anneal="linear", three_phase=True)),
    ("one_cycle_momentum_schedule(1000)", lrt.one_cycle_momentum_schedule(1000)),
    ("sgdr_schedule(0.1, 100, 2.0, 0.005)", lrt.sgdr_schedule(0.1, 100, 2.0, 0.005)),
    ("sgdr max_decay=0.7, cycle_mult=1", lrt.sgdr_schedule(0.1, 150, 1.0, 0.0, max_decay=0.7)),
    ("join: constant → cosine", lrt.join_schedules([lrt.constant_schedule(0.05),
                                                    lrt.cosine_decay_schedule(0.1, 500)], [400])),
    ("wsd_schedule(0.1, 1000, 100, 300): cooldowns", {  # one panel, a line per cooldown shape
        shape: lrt.wsd_schedule(0.1, 1000, 100, 300, decay_shape=shape) for shape in ("linear", "1-sqrt")}),
]

fig, axes = plt.subplots(4, 4, figsize=(17, 11), layout="constrained")
for ax, (title, sched) in zip(axes.flat, PANELS):
  for label, line in (sched.items() if isinstance(sched, dict) else [(None, sched)]):
    lrt.plotting.plot_schedule(line, 1000, ax=ax, label=label)
  ax.set_title(title, fontsize=9)
fig.savefig(Path(__file__).parent / "gallery.png", dpi=70)
