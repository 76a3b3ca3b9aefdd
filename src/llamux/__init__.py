"""llamux: route LLM chat requests across your endpoints without crossing any quota."""

from ._errors import (
    ConfigError,
    LlamuxError,
    NoEndpointAvailable,
    ProviderError,
    RequestTooLarge,
    StoreError,
)

__all__ = [
    "ConfigError",
    "LlamuxError",
    "NoEndpointAvailable",
    "ProviderError",
    "RequestTooLarge",
    "StoreError",
]
