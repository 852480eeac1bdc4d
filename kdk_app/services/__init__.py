"""Concrete services: database adapters on the core service layer."""

from .adapter import AdapterService
from .memory import MemoryService
from .mongo import MongoService

__all__ = ["AdapterService", "MemoryService", "MongoService"]
