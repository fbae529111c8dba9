"""A Kubernetes API emulator: many clusters in one aiohttp process, faithful enough for kubectl.

Each cluster is served under ``/clusters/<name>`` and can be used as a kubeconfig ``server:``;
the official ``kubernetes`` client and ``kubectl`` work against it unchanged. Modules, bottom up:

- :mod:`.resources` the served kinds and their merge schema; :mod:`.errors` Status errors;
- :mod:`.selectors`, :mod:`.patch`, :mod:`.strategic`, :mod:`.managed` (server-side apply);
- :mod:`.store` (objects, resourceVersions, history) and :mod:`.registry` (API semantics), with
  :mod:`.defaults` and :mod:`.scale`;
- :mod:`.controller` (Deployments roll out over time), :mod:`.faults` (fault injection, request log);
- :mod:`.watch`, :mod:`.discovery`, :mod:`.openapi`, :mod:`.tables`, :mod:`.requestinfo`,
  :mod:`.handlers`, :mod:`.admin`, :mod:`.app` (HTTP);
- :mod:`.emulator` (clusters), :mod:`.config`, :mod:`.harness` (in-process server for tests),
  ``python -m sandbox.apiserver`` (the process ``python -m sandbox up`` starts).
"""
