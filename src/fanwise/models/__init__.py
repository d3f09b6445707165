"""Models fanwise can call, and the one place that picks one from the settings."""

from __future__ import annotations

from fanwise.models.base import Completion, Model, Request, Usage
from fanwise.models.offline import OfflineModel, OfflineSettings
from fanwise.models.providers import Provider, choose_provider

__all__ = [
    "Completion",
    "Model",
    "OfflineModel",
    "OfflineSettings",
    "Provider",
    "Request",
    "Usage",
    "choose_provider",
]
