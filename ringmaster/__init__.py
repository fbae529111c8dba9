"""ringmaster: the application shell (CLI, worker, settings).

Layers point one way: ``ringmaster`` -> ``workflows`` -> ``activities`` -> ``policies``.
"""
