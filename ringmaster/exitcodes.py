"""The CLI's documented exit codes; CI scripts branch on these, so they never change meaning."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every ``ringmaster`` command."""

    OK = 0
    """Succeeded (or, without ``--wait``, started)."""
    RELEASE_FAILED = 1
    """The release ended rolled back, aborted or failed."""
    INVALID = 2
    """Invalid input, a residency denial, or a rejected submission or control (a submission a freeze
    refuses; a ``freeze`` of a scope already frozen, an ``unfreeze`` of one that is not); for the worker,
    settings it cannot run with (fleet, kubeconfig, identity policy, attestation key, versioning without a
    known commit); for ``deployment current``, a build Temporal does not know or none of whose workers
    polls yet."""
    UNREACHABLE = 3
    """Temporal (or another required server: a flag server for ``flags stale``) could not be reached."""
    TIMEOUT = 4
    """``--wait --timeout`` passed while the release is still running."""
    NOT_ALLOWED = 5
    """``policy check``: the authorization policy refuses the request. (A submission or control the
    worker refuses, on authorization as on anything else, is a rejected request: 2.)"""
    NONDETERMINISTIC = 6
    """``replay``: a history of a running (or recently closed) release does not replay against this
    code; the output names the workflow, its run and the event. Do not deploy this worker."""
    IN_USE = 7
    """``deployment drained``: the version is still routed to, or open runs are still pinned to it; keep
    its workers. ``patches --check P``: a patch is still needed by an open run."""
