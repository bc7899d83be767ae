"""The worker process (``lifenet worker``): answers the server's batches.

    process   the connection to the server (handshake, heartbeats, reconnection with
              backoff, BYE on SIGTERM) and the computing of each batch
"""

from server.worker.process import Worker, WorkerConfig, run_worker

__all__ = ["Worker", "WorkerConfig", "run_worker"]
