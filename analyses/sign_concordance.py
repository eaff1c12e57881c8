"""Sign concordance of feedback with W against step (a panel per projection, a line per rule), and
final test accuracy against final concordance (a point per run).

    python analyses/sign_concordance.py [RUNS] [OUT]   # -> analyses/figures/sign_concordance.png

Concordance: the fraction of feedback entries whose sign matches W's; 1 for backprop and
sign-symmetric rules, about 0.5 for random feedback (Liao, Leibo & Poggio 2016).
"""

import argparse
from pathlib import Path

import biofa  # registers ds.biofa

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", nargs="?", default="runs/ei_cnn")
parser.add_argument("out", nargs="?", default="analyses/figures/sign_concordance.png")
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
sc = ds.dropna("projection", how="all", subset=["sign_concordance"])
sc = sc.dropna("rule", how="all", subset=["sign_concordance"])  # direct rules have none
curve = sc.biofa.curve("sign_concordance")  # mean_value, sd_value, n; dims (rule, step, projection)
final = sc.biofa.final("sign_concordance").mean("projection")  # per run
accuracy = sc.biofa.final("test_accuracy")
n = sc.sizes["projection"]
fig, axes = plt.subplots(1, n + 1, figsize=(3.3 * n + 5.5, 3.4), layout="constrained")
for i, rule in enumerate(curve.rule.values):
    for ax, projection in zip(axes, sc.projection.values):
        c = curve.sel(rule=rule, projection=projection).dropna("step", subset=["mean_value"])
        m, sd = c.mean_value, c.sd_value
        ax.plot(c.step, m, color=f"C{i}", label=rule)
        ax.fill_between(c.step, m - sd, m + sd, color=f"C{i}", alpha=0.2)
        ax.set(title=projection, xlabel="optimiser step", ylim=(-0.03, 1.03))
    axes[-1].scatter(final.sel(rule=rule), accuracy.sel(rule=rule), color=f"C{i}")
for ax in axes[:-1]:
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
axes[0].set_ylabel("sign concordance (fraction)")
axes[-1].set(xlabel="final concordance (projection mean)", ylabel="final test accuracy")
axes[-1].set(title="one point per run", xlim=(-0.05, 1.05))
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="rule")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=150)
print(f"wrote {args.out}")
