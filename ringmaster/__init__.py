"""ringmaster: the application shell (CLI, worker, settings) and the local sandbox fleet.

Layers point one way: ``ringmaster`` -> ``workflows`` -> ``activities`` -> ``policies``.
"""
