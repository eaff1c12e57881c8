"""Accuracy and loss against training step, one line per rule: mean ± sd over seeds.

    python analyses/compare_rules.py [RUNS] [OUT]  # runs/ei_cnn, analyses/figures/compare_rules.png

RUNS is a directory of run files (a ``--sweep``'s output); OUT a .png or .pdf.
"""

import argparse
from pathlib import Path

import biofa  # registers ds.biofa

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", nargs="?", default="runs/ei_cnn")
parser.add_argument("out", nargs="?", default="analyses/figures/compare_rules.png")
args = parser.parse_args()
try:
    import matplotlib.pyplot as plt
except ImportError:  # the "viz" extra
    parser.exit(2, f"{parser.prog}: error: needs matplotlib: pip install 'biofa[viz]'\n")
plt.switch_backend("Agg")

try:
    ds = biofa.open_runs(args.runs)
except (OSError, ValueError) as err:  # no runs there, or runs that do not belong together
    parser.exit(2, f"{parser.prog}: error: {err}\n")
variables = ["loss", "train_accuracy", "test_accuracy"]
fig, axes = plt.subplots(1, len(variables), figsize=(13, 3.8), layout="constrained")
for ax, var in zip(axes, variables):
    curve = ds.biofa.curve(var)  # Dataset: mean_value, sd_value, n over seeds; dims (rule, step)
    for i, rule in enumerate(curve.rule.values):
        c = curve.sel(rule=rule).dropna("step", subset=["mean_value"])
        m, sd = c.mean_value, c.sd_value
        ax.plot(c.step, m, color=f"C{i}", label=rule)
        ax.fill_between(c.step, m - sd, m + sd, color=f"C{i}", alpha=0.2)
    units = ds[var].attrs["units"]
    label = var.replace("_", " ") + ("" if units == "1" else f" ({units})")
    ax.set(xlabel="optimiser step", ylabel=label, title=ds[var].attrs["long_name"])
axes[0].set_yscale("log")
axes[-1].legend(title=f"rule (mean ± sd, {ds.sizes['seed']} seeds)", fontsize="small")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=150)
print(f"wrote {args.out}")
