"""The line a ringmaster worker prints once it polls its task queue.

Supervisors that start a worker and must know when it serves (the sandbox, scripts, tests) wait for
this line on its stderr. It lives apart from :mod:`ringmaster.worker` so that waiting for a worker
never imports what a worker needs (Temporal's worker, the Kubernetes client, scipy).
"""

from __future__ import annotations

READY = "ringmaster worker polling task queue"
