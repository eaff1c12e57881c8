"""Measurement: alignment metrics and their registry, probes, the shadow pass, the recorder (and
netCDF writing), reading runs back (``open_runs``, ``combine``) and the ``ds.biofa`` accessor."""

from biofa.measure import metrics as _builtin  # noqa: F401  (registers the built-in metrics)
from biofa.measure.registry import METRICS, MetricInfo, metric, register_metric, registered

__all__ = ["METRICS", "MetricInfo", "metric", "register_metric", "registered"]
