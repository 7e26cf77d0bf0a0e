"""Memory by name across processes and over time: Prometheus export, recording, plotting."""
