"""How calls are sent: the engine owns the run, a dispatch only sends.

``Live`` (one request per call) is here; the Batch API's dispatch is ``fanwise.batchapi``'s
``BatchAPI`` and Ray's is ``fanwise.cluster``'s ``RayDispatch``, each imported only when used.
"""

from fanwise.dispatch.base import Dispatch, Run, Ticket
from fanwise.dispatch.live import Live

__all__ = ["Dispatch", "Live", "Run", "Ticket"]
