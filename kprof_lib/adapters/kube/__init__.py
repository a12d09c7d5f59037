"""The Kubernetes API, through the official client: connection set-up, raw JSON reads (no model
objects, so caches stay small), watches, leases, events, status patches."""
