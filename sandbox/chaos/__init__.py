"""Generated fault scenarios on the local stack, judged on the clusters themselves.

:mod:`~sandbox.chaos.scenario` draws a scenario from a seed (a plan, where the version is bad,
operator controls and faults in time); :mod:`~sandbox.chaos.stack` starts the stack and does the
faults; :mod:`~sandbox.chaos.runner` runs a scenario as a team would; :mod:`~sandbox.chaos.invariants`
judges what the clusters hold. ``python -m sandbox.chaos`` (or ``scripts/chaos.py``) runs many.
"""
