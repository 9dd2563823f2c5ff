"""Prometheus series of the sockets and the channel layer (README "Metrics").

Counted where they happen: frames and open sockets in the consumers (the web process),
dropped events and Redis reconnects in the channel layer's receive side (the web process,
and any process that receives: ``manage.py jobs watch``), failed publishes wherever job events
are sent (web, worker-progress, worker-jobs). With ``PROMETHEUS_MULTIPROC_DIR`` set,
prometheus_client writes each process's values to files there and the web's ``/metrics``
adds them up (``proj.metrics``); without it each process keeps its own, and ``/metrics``
shows the web process's.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

#: ``endpoint`` label values: protocol v1 at ``/ws/jobs/`` and the seed protocol at ``/prog/``.
ENDPOINT_JOBS: Final = "jobs"
ENDPOINT_PROG: Final = "prog"
ENDPOINTS: Final = (ENDPOINT_JOBS, ENDPOINT_PROG)

FRAMES_SENT: Final = Counter(
    "jobs_ws_frames_sent",
    "WebSocket frames the consumers sent to clients (answers, snapshots and live frames).",
    ["endpoint"],
)
#: ``livesum``: the sockets of the web processes alive now, added up; a process that died
#: leaves no count behind (``proj.metrics`` forgets the live gauges of dead processes).
OPEN_SOCKETS: Final = Gauge(
    "jobs_ws_open_sockets",
    "WebSocket connections accepted and not yet closed.",
    ["endpoint"],
    multiprocess_mode="livesum",
)
EVENTS_DROPPED: Final = Counter(
    "jobs_layer_events_dropped",
    "Channel-layer events dropped because a local channel (one socket's queue) was full.",
)
REDIS_RECONNECTS: Final = Counter(
    "jobs_layer_redis_reconnects",
    "Reconnects of the channel layer's Redis subscriber connection (after an outage or a blip).",
)
PUBLISH_FAILED: Final = Counter(
    "jobs_events_publish_failed",
    "Job events that failed to publish to the channel layer (Redis away; viewers catch up from snapshots).",
)

# Every series exists from the start, at 0, instead of appearing at its first increment.
for _endpoint in ENDPOINTS:
    FRAMES_SENT.labels(_endpoint)
    OPEN_SOCKETS.labels(_endpoint)
