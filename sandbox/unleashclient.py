"""The sandbox's calls to an Unleash server's HTTP API: seeding its state and telling when it is ready.

Every sandbox Unleash holds the same state, put there through the Admin API with the admin token:
the project ``default`` (Unleash's own), the environment ``production`` enabled, the context field
``cluster`` whose legal values are the jurisdiction's clusters, and the demo flag ``checkout-v2``
(type release, disabled in production, no strategy). :func:`seed` creates what is missing and never
touches what is there, so a restarted server keeps its flags as they were changed. :func:`seeded`
reads that state back, through the Admin API and through the client API with the client token, as
a client of the server would: a server counts as ready only then, not when its port opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sandbox.jsonclient import JsonClient, RequestError

PROJECT = "default"
ENVIRONMENT = "production"
CONTEXT_FIELD = "cluster"
DEMO_FLAG = "checkout-v2"


class UnleashRequestError(RequestError):
    """An Unleash server refused a request."""


@dataclass(frozen=True)
class Seed:
    """What one server is seeded with."""

    clusters: tuple[str, ...]
    """Legal values of the context field ``cluster``: the jurisdiction's clusters."""
    project: str = PROJECT
    environment: str = ENVIRONMENT
    flag: str = DEMO_FLAG


class UnleashApi(JsonClient):
    """One Unleash server's API, called with one token (``Authorization`` header, as Unleash wants it)."""

    error: ClassVar[type[RequestError]] = UnleashRequestError

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        super().__init__(base_url, timeout=timeout, headers={"Authorization": token})

    def get(self, path: str) -> Any:
        """``GET path``; None when the server answers 404."""
        try:
            return self.call("GET", path)
        except UnleashRequestError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Any) -> None:
        """``POST path`` that creates something; one that already exists (409) counts as created."""
        try:
            self.call("POST", path, body)
        except UnleashRequestError as exc:
            if exc.status != 409:
                raise


def healthy(base_url: str) -> bool:
    """Whether the server answers ``/health`` with ``GOOD`` (it has migrated its database and listens)."""
    try:
        answer = JsonClient(base_url, timeout=2.0).call("GET", "/health")
    except (OSError, ValueError, RequestError):
        return False
    return isinstance(answer, dict) and answer.get("health") == "GOOD"


def seed(admin: UnleashApi, wanted: Seed) -> None:
    """Create whatever of ``wanted`` the server lacks; leave alone what it has (see the module docstring)."""
    environment = admin.get(f"/api/admin/environments/{wanted.environment}")
    if environment is None:
        admin.create("/api/admin/environments", {"name": wanted.environment, "type": "production"})
        environment = {"enabled": False}
    if not environment.get("enabled"):
        admin.call("POST", f"/api/admin/environments/{wanted.environment}/on")
    if admin.get(f"/api/admin/context/{CONTEXT_FIELD}") is None:
        admin.create(
            "/api/admin/context",
            {
                "name": CONTEXT_FIELD,
                "description": "The Kubernetes cluster a request is served in (ringmaster's fleet names).",
                "legalValues": [{"value": c} for c in wanted.clusters],
                "stickiness": False,
            },
        )
    features = f"/api/admin/projects/{wanted.project}/features"
    if admin.get(f"{features}/{wanted.flag}") is None:
        about = "The sandbox's demo flag: a new checkout."
        admin.create(features, {"name": wanted.flag, "type": "release", "description": about})


def seeded(admin: UnleashApi, client: UnleashApi, wanted: Seed) -> str | None:
    """None when the server serves ``wanted`` to both its admin and its client token, else what is missing."""
    try:
        projects = admin.call("GET", "/api/admin/projects").get("projects", [])
        if wanted.project not in {p.get("id") for p in projects}:
            return f"no project {wanted.project}"
        environment = admin.get(f"/api/admin/environments/{wanted.environment}") or {}
        if not environment.get("enabled"):
            return f"environment {wanted.environment} is not enabled"
        if admin.get(f"/api/admin/context/{CONTEXT_FIELD}") is None:
            return f"no context field {CONTEXT_FIELD}"
        flag = admin.get(f"/api/admin/projects/{wanted.project}/features/{wanted.flag}")
        if flag is None or flag.get("type") != "release":
            return f"no release flag {wanted.flag}"
        served = client.call("GET", "/api/client/features").get("features", [])
        if wanted.flag not in {f.get("name") for f in served}:
            return f"the client token is not served {wanted.flag}"
    except (OSError, ValueError, AttributeError, RequestError) as exc:
        return f"the API did not answer as expected: {exc}"
    return None
