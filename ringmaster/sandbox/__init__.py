"""The local fleet used by the demo and the tests: a Kubernetes API emulator and its helpers."""
