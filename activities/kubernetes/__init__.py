"""The Kubernetes side of the rollout activities: strategies, waits, rollback and evidence on real clusters.

:class:`KubernetesBackend` implements :class:`activities.rollout.ClusterBackend` over one official
client per fleet cluster (kubeconfig contexts, :mod:`.clients`). Every object is written by
server-side apply as field manager ``ringmaster`` and labelled as :mod:`.marks` describes; the
strategies live in :mod:`.canary`, :mod:`.bluegreen` and :mod:`.rolling`, the way back in
:mod:`.rollback` and :mod:`.snapshots`, the residency facts in :mod:`.evidence`.
"""

from activities.kubernetes.backend import KubernetesBackend
from activities.kubernetes.clients import Tuning

__all__ = ["KubernetesBackend", "Tuning"]
