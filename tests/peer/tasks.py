"""The peer's job: the project's ``simulated`` kind as a celery-progress task."""

import time

from celery import shared_task
from celery_progress.backend import ProgressRecorder


@shared_task(bind=True)
def simulated(self, steps: int, interval_s: float) -> int:
    """``steps`` steps, step ``i`` recorded at ``started + i * interval_s`` (the project's
    simulated kind's clock: no drift). The description carries ``started`` (``time.time()``),
    so a viewer on the same machine can tell when the step it sees happened."""
    recorder = ProgressRecorder(self)
    started = time.time()
    for i in range(1, steps + 1):
        time.sleep(max(0.0, started + i * interval_s - time.time()))
        recorder.set_progress(i, steps, description=f"{started:.6f}")
    return steps
