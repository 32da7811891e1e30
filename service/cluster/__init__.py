"""The Ray Jobs client: the connection and its errors (client.py), raysemble's view of the job table
(jobs.py), what travels with a job (package.py), a sweep's life as jobs (lifecycle.py), how it is doing
(progress.py) and what the autoscaler is doing for it (scaling.py)."""
from service.cluster.client import (ClusterError, Conflict, JobsError, Unauthorized, UnknownSweep, Unreachable,
                                    connect, resolve_address)
from service.cluster.jobs import COMMANDS, TERMINAL, check_id, new_id, sweep_id_of
from service.cluster.lifecycle import cancel, deploy, deployed_url, follow, logs, resume, submit, wait
from service.cluster.progress import list_sweeps, progress, settle, status, sweep_trials, trials

__all__ = ["COMMANDS", "ClusterError", "Conflict", "JobsError", "TERMINAL", "Unauthorized", "UnknownSweep",
           "Unreachable", "cancel", "check_id", "connect", "deploy", "deployed_url", "follow", "list_sweeps", "logs",
           "new_id", "progress", "resolve_address", "resume", "settle", "status", "submit", "sweep_id_of",
           "sweep_trials", "trials", "wait"]
