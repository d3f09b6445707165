"""``--engine ray``: a fan-out over Ray actors, each running fanwise's engine, one shared budget.

Optional: ``pip install 'fanwise[ray]'``. Nothing here imports Ray until a run starts.
"""

from fanwise.cluster.dispatch import RayDispatch, RayMissing, import_ray
from fanwise.cluster.limits import LeasedLimiter, SharedLimits
from fanwise.cluster.worker import Worker, WorkerPlan

__all__ = [
    "LeasedLimiter",
    "RayDispatch",
    "RayMissing",
    "SharedLimits",
    "Worker",
    "WorkerPlan",
    "import_ray",
]
