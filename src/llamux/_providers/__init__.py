"""Calling providers: the ``Transport`` protocol, the ``openai``-SDK transport and the one
boundary where SDK and HTTP-library exceptions become llamux errors."""
