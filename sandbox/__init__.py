"""The local stack for the demo and the tests: never shipped, and nothing else imports it.

It sits above the product (``sandbox -> ringmaster -> workflows -> activities -> policies``):

- :mod:`sandbox.apiserver` the Kubernetes API emulator (many clusters in one process);
- :mod:`sandbox.traffic` the traffic simulator whose metrics Prometheus scrapes;
- :mod:`sandbox.prometheus` one real Prometheus per jurisdiction;
- :mod:`sandbox.temporal` a Temporal dev server with its UI, and a ringmaster worker;
- :mod:`sandbox.processes` background processes recorded in ``DIR/state.json``;
- :mod:`sandbox.stack` ``up``/``down``/``status`` of the whole stack; :mod:`sandbox.demo` ``make demo``.

``python -m sandbox up|down|status`` is its command line.
"""
