"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from chatsio.config import Config
from chatsio.metrics import Metrics
from chatsio.services import Services

config_key = web.AppKey("config", Config)
services_key = web.AppKey("services", Services)
metrics_key = web.AppKey("metrics", Metrics)
