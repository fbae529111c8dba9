"""Every side effect of a release: Kubernetes, Prometheus, evidence gathering."""
