"""Measurement: alignment metrics, probes, the shadow pass, the recorder and reading runs back."""
