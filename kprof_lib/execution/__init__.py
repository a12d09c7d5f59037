"""Carrying out a plan: the ports (small Protocols) the outside world is reached through, and the
executor that captures, stores and reports. Imports the pure layers below and the OpenTelemetry API
(a no-op until a runtime installs an SDK); never an adapter or a runtime."""
