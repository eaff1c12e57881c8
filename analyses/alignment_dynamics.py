"""Feedback, error and update angles against step: a panel per projection, a line per rule.

    python analyses/alignment_dynamics.py [RUNS] [OUT]  # runs/ei_cnn, analyses/figures/...

Lines: mean over seeds; bands: ± one sd. 90° is orthogonal to backprop; aligning rules fall below
it. Empty panels: undefined there (no error reaches the input area; direct rules have no B of W's
shape; the readout's update is exact for every rule, so its update angle is 0).
"""

import argparse
from pathlib import Path

import biofa  # registers ds.biofa

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", nargs="?", default="runs/ei_cnn")
parser.add_argument("out", nargs="?", default="analyses/figures/alignment_dynamics.png")
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
angles = [v for v in ("feedback_angle", "error_angle", "update_angle") if v in ds]
nrow, ncol = len(angles), ds.sizes["projection"]
size = (3.2 * ncol + 2, 2.6 * nrow)
kw = dict(sharex=True, sharey=True, squeeze=False, layout="constrained")
fig, axes = plt.subplots(nrow, ncol, figsize=size, **kw)
for row, var in zip(axes, angles):
    curve = ds.biofa.curve(var)  # mean_value, sd_value, n; dims (rule, step, projection)
    for ax, projection in zip(row, ds.projection.values):
        for i, rule in enumerate(curve.rule.values):
            c = curve.sel(rule=rule, projection=projection).dropna("step", subset=["mean_value"])
            m, sd = c.mean_value, c.sd_value
            ax.plot(c.step, m, color=f"C{i}", label=rule)
            ax.fill_between(c.step, m - sd, m + sd, color=f"C{i}", alpha=0.2)
        ax.axhline(90, color="grey", lw=0.8, ls="--")
        ax.set_title(projection, fontsize="medium")
    row[0].set_ylabel(f"{var.replace('_', ' ')} ({ds[var].attrs['units']})")
for ax in axes[-1]:
    ax.set_xlabel("optimiser step")
lines = {h.get_label(): h for ax in axes.flat for h in ax.get_lines() if h.get_label()[0] != "_"}
fig.legend(lines.values(), lines.keys(), loc="outside right upper", title="rule (mean ± sd)")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=150)
print(f"wrote {args.out}")
