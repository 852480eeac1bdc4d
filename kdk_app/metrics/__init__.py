"""Prometheus metrics at ``/metrics`` (README "Metrics")."""

from .part import install_metrics
from .registry import Metrics

__all__ = ["Metrics", "install_metrics"]
