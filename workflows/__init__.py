"""Temporal workflows: deterministic orchestration of a release through rings and clusters."""
