"""llamux: route LLM chat requests across your endpoints without crossing any quota.

>>> from llamux import Router
>>> router = Router.from_csv("endpoints.csv")          # doctest: +SKIP
>>> response = router.completion(messages)             # doctest: +SKIP
"""

from ._clock import Clock, FakeClock, SystemClock
from ._config.load import Config, Endpoint, Limits, Pool, Route
from ._engine.batch import BatchProgress
from ._engine.batch_item import BatchItem
from ._engine.batch_run import AsyncBatchRun, BatchRun
from ._engine.call import Answer, Call
from ._engine.served import Attempt, Served, served_by
from ._errors import (
    ConfigError,
    InvalidRequest,
    LlamuxError,
    NoEndpointAvailable,
    ProviderError,
    RequestTooLarge,
    StoreError,
)
from ._policy.quota import Cooldown, Refusal, Reservation, RuleUsage
from ._policy.strategies import Preference, Request, Strategy
from ._router import Router
from ._status import EndpointStatus
from ._stores import QuotaStore, store_from_url

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AsyncBatchRun",
    "Attempt",
    "BatchItem",
    "BatchProgress",
    "BatchRun",
    "Call",
    "Clock",
    "Config",
    "ConfigError",
    "Cooldown",
    "Endpoint",
    "EndpointStatus",
    "FakeClock",
    "InvalidRequest",
    "Limits",
    "LlamuxError",
    "NoEndpointAvailable",
    "Pool",
    "Preference",
    "ProviderError",
    "QuotaStore",
    "Refusal",
    "Request",
    "RequestTooLarge",
    "Reservation",
    "Route",
    "Router",
    "RuleUsage",
    "Served",
    "StoreError",
    "Strategy",
    "SystemClock",
    "served_by",
    "store_from_url",
]
