"""Which endpoints a request selects: by its ``model`` (``auto``, a route, an endpoint id or
key list, an upstream model name) and its kind (only endpoints that serve it).

The same tuple comes back each time for the same model and kind: strategies keep their
order for it, and a decision's refused prefix is found by it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._config.endpoint import CHAT
from .._config.load import Endpoint, Route
from .._errors import ConfigError, InvalidRequest

Chosen = tuple[tuple[Endpoint, ...], Route | None]


class Selection:
    """The candidates of each model and kind, of one router's endpoints and routes."""

    def __init__(self, endpoints: Sequence[Endpoint], routes: Mapping[str, Route]) -> None:
        self.endpoints = tuple(endpoints)
        self.routes = routes
        self._chosen: dict[tuple[str, str], Chosen] = {}
        self._serving: dict[str, tuple[Endpoint, ...]] = {}

    def candidates(self, model: Any, kind: str = CHAT) -> Chosen:
        """The endpoints of ``kind`` a ``model`` value selects, and its route if any."""
        if model is None or model == "auto":
            serving = self._serving.get(kind)
            if serving is None:
                serving = tuple(e for e in self.endpoints if kind in e.serves)
                if len(serving) == len(self.endpoints):
                    serving = self.endpoints  # all serve it: the router's own tuple
                self._serving[kind] = serving
            if not serving:
                raise self._none_serve(kind)
            return serving, None
        if not isinstance(model, str):
            raise InvalidRequest(f"model must be a string, not {type(model).__name__}")
        known = self._chosen.get((model, kind))
        if known is not None:
            return known
        route = self.routes.get(model)
        found: Chosen
        if route is not None:
            members = (e for name in route.endpoints for e in self._named(name))
            found = tuple(dict.fromkeys(members)), route
        else:
            chosen = self._named(model) or tuple(e for e in self.endpoints if e.model == model)
            if not chosen:
                ids = (n for e in self.endpoints for n in (e.group, e.id) if n)
                names = ", ".join([*self.routes, *dict.fromkeys(ids)])
                raise ConfigError(
                    f"no endpoint or route serves model {model!r}; pass one of: {names}, "
                    "an upstream model name, or 'auto' for all"
                )
            found = chosen, None
        of_kind = tuple(e for e in found[0] if kind in e.serves)
        if not of_kind:
            raise self._none_serve(kind, model)
        found = of_kind, found[1]
        self._chosen[(model, kind)] = found  # bounded: only names the config knows succeed
        return found

    def _named(self, name: str) -> tuple[Endpoint, ...]:
        """The endpoint of id ``name``, or every endpoint of the key list ``name`` (a row
        that lists several key variables, see ``Endpoint.group``), in order."""
        return tuple(e for e in self.endpoints if name in (e.id, e.group))

    def _none_serve(self, kind: str, model: str | None = None) -> ConfigError:
        which = f"model {model!r}" if model else "this config"
        serving = [e.id for e in self.endpoints if kind in e.serves]
        hint = (
            f"use one that does: {', '.join(serving)}"
            if serving
            else f"add an endpoint that serves it (serves column: {kind})"
        )
        return ConfigError(f"no endpoint of {which} serves {kind} requests; {hint}")
