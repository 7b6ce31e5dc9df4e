"""Ray worker set-up hook for the Ray batch tests: a video whose worker process dies on its first attempt.

Ray runs :func:`die_once_where_asked` in every worker process of the tests' Ray session
(``worker_process_setup_hook``). It wraps the batch's :func:`run_job` so that a job whose output
folder has a sibling ``<name>.die-once`` file removes that file and ends its process with
``os._exit``, as a worker killed by the kernel would: no exception, no result. The retry finds no
such file and runs the video normally. Both attempts are logged in ``<name>.attempts`` (the pid of
each, a line each); other jobs are left alone.
"""

from __future__ import annotations

import os


def die_once_where_asked() -> None:
    from annotator.core.runs import batch

    run_job = batch.run_job

    def run_job_or_die(job, *args, **kwargs):
        trigger = job.out.with_name(job.out.name + ".die-once")
        attempts = job.out.with_name(job.out.name + ".attempts")
        if trigger.exists() or attempts.exists():
            with open(attempts, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()}\n")
        if trigger.exists():
            trigger.unlink()
            os._exit(1)
        return run_job(job, *args, **kwargs)

    batch.run_job = run_job_or_die
