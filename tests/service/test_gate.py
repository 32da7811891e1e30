"""service.gate: the spec-check workers end with the server process, however it ends."""
import signal
import subprocess
import sys

import psutil

from service.gate import PARENT_POLL_S

SERVER = """
import asyncio, sys
from service.gate import Gate
gate = Gate(workers=2, queue=0)
print(asyncio.run(gate.run(int, "7")), flush=True)  # a check ran: the workers are up
sys.stdin.read()  # until the test ends it
"""


def test_check_workers_end_when_the_server_is_killed():
    """Killed (or stopped by SIGTERM, which uvicorn re-raises after its shutdown), the server never tells its
    pool to stop: the workers must notice on their own instead of outliving it."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    workers = []
    try:
        assert server.stdout.readline().strip() == "7"
        workers = [p for p in psutil.Process(server.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, workers
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=10 * PARENT_POLL_S)
        assert alive == [], f"workers outlived their server: {alive}"
    finally:
        server.kill()  # a no-op once it has ended
        server.wait(timeout=30)
        for p in workers:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
