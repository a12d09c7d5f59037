"""The node agent's settings: the operator's (`operator.settings.Settings`, which `kprof node`
shares with `kprof run`) and what only a node agent has: its node, its kubelet, how often reports
are folded and refreshed. Light to import, so `kprof node --help` needs no client library.
"""

from __future__ import annotations

from dataclasses import dataclass

from kprof_lib.runtimes.operator.settings import Settings

# The kubelet's authenticated port; its /metrics/resource is what metrics-server reads too.
KUBELET_PORT = 10250


@dataclass
class NodeSettings(Settings):
    """What `kprof node`'s flags set besides the operator's (see docs/OPERATOR.md, "Node agents")."""

    node_name: str = ""
    # Default: https://$NODE_IP:10250 (the downward API's status.hostIP).
    kubelet_url: str = ""
    kubelet_ca_file: str | None = None
    kubelet_tls_verify: bool = True
    # How often the elected agent folds the reports into the configs' statuses.
    fold_interval: float = 15.0
    # An agent rewrites an unchanged report this often, so the fold tells a live node from a gone one.
    report_refresh: float = 300.0
    lease_name: str = "kprof-node-status"


NODE_DEFAULTS = NodeSettings()
