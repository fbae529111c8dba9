"""A small synchronous client of the traffic simulator's runtime controls (:mod:`sandbox.traffic`).

It reads when versions and flags served (``/served``), and changes how versions behave while the
sandbox runs, so a scenario can make one version bad in some clusters without restarting anything.
Profiles are dicts in the settings file's camelCase (:class:`sandbox.settings.VersionProfile`); the
simulator validates them and answers 400 naming the field (:class:`TrafficError`) without changing
anything::

    traffic = TrafficClient(sandbox.traffic)
    traffic.add_profiles([{"match": "v7", "clusters": ["usw2-*"], "errorRate": 0.5}])
"""

from __future__ import annotations

from typing import Any

from sandbox.jsonclient import JsonClient, RequestError


class TrafficError(RequestError):
    """The simulator refused a request; ``status`` and ``body`` say why."""


class TrafficClient(JsonClient):
    """Calls against one simulator (``base_url`` like ``http://127.0.0.1:PORT``, ``Sandbox.traffic``)."""

    error = TrafficError

    def profiles(self) -> list[dict[str, Any]]:
        """The profiles in use, first match wins."""
        return list(self.call("GET", "/profiles")["profiles"])

    def add_profiles(self, profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put ``profiles`` before those in use (so they win); returns the whole list."""
        return list(self.call("POST", "/profiles", {"profiles": profiles})["profiles"])

    def set_profiles(self, profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace every profile with ``profiles``; returns them as the simulator keeps them."""
        return list(self.call("PUT", "/profiles", {"profiles": profiles})["profiles"])

    def served(self) -> dict[str, Any]:
        """Per cluster, when each version and each flag switched on first and last served a request:
        ``{cluster: {versions: {v: {first, last}}, features: {flag: {first, last}}}}``, Unix seconds."""
        return dict(self.call("GET", "/served"))
