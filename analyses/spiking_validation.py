"""Raster, rate-vs-rate and error-vs-error plots of a spiking validation file.

    python analyses/spiking_validation.py VALIDATION [OUT]  # -> analyses/figures/spiking_...png

VALIDATION is a file written by ``biofa.spiking.validate(..., out=...)``; OUT a .png or .pdf.
"""

import argparse
from pathlib import Path

import xarray as xr

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("path", help="netCDF file written by biofa.spiking.validate(..., out=...)")
parser.add_argument("out", nargs="?", default="analyses/figures/spiking_validation.png")
args = parser.parse_args()
try:
    import matplotlib.pyplot as plt
except ImportError:  # the "viz" extra
    parser.exit(2, f"{parser.prog}: error: needs matplotlib: pip install 'biofa[viz]'\n")
plt.switch_backend("Agg")
try:
    ds = xr.open_dataset(args.path, engine="netcdf4").load()
except (OSError, ValueError) as err:  # no such file, or not netCDF
    parser.exit(2, f"{parser.prog}: error: cannot open {args.path}: {err}\n")
if "spiking_rate" not in ds:
    parser.exit(2, f"{parser.prog}: error: {args.path} is not a spiking validation file\n")
fig, ax = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
for pop in ds.population.values:  # raster of the first image; rates; one colour per population
    mine = (ds.spike_image == 0) & (ds.neuron_population[ds.spike_neuron] == pop).values
    ax[0].scatter(ds.spike_time[mine] * 1e3, ds.spike_neuron[mine], s=4, label=pop)
    sel = ds.neuron_population == pop
    ax[1].scatter(ds.expected_rate[:, sel], ds.spiking_rate[:, sel], s=2, alpha=0.3, label=pop)
ax[0].axvline(ds.attrs["settle"] * 1e3, color="k", lw=0.8, ls=":", label="rates counted from")
ax[0].set(xlabel="time from stimulus onset (ms)", ylabel="neuron", title="spikes, image 0")
top = float(ds.expected_rate.max())
ax[1].plot([0, top], [0, top], "k--", lw=0.8, label="identity")
agreement = f"class agreement {float(ds.class_agreement):.0%}"
ax[1].set(xlabel="rate model x gain (Hz)", ylabel="spiking rate (Hz)", title=agreement)
if "delivered_error_spiking" in ds:
    ax[2].scatter(ds.delivered_error_rate_model, ds.delivered_error_spiking, s=2, alpha=0.3)
    corr = ", ".join(f"{a} {c:.3f}" for a, c in zip(ds.error_area.values, ds.error_correlation))
    labels = {"xlabel": "error delivered by the rate model", "ylabel": "error delivered in spikes"}
    ax[2].set(title=f"feedback pathway, correlation {corr}", **labels)
for a in ax[:2]:
    a.legend(markerscale=3, fontsize=8)
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=120)
print(f"wrote {args.out}")
