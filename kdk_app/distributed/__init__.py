"""Distributed services (feathers-distributed on Redis): registry, remote proxies, calls, events."""

from .configure import configure_distribution
from .envelope import Refused, Signer
from .events import META_KEY, is_distributed
from .node import Distribution
from .remote import RemoteService
from .settings import DEFAULTS, DistributionSettings

__all__ = [
    "DEFAULTS",
    "META_KEY",
    "Distribution",
    "DistributionSettings",
    "Refused",
    "RemoteService",
    "Signer",
    "configure_distribution",
    "is_distributed",
]
