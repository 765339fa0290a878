"""`--workers 2`: a worker killed with SIGKILL is started again, and answers go on."""

from __future__ import annotations

import os
import signal

from tests.support.harness import StartServer, wait_until
from tests.support.harness import worker_pids as children


def test_a_killed_worker_is_started_again(start_server: StartServer) -> None:
    server = start_server(args=["--workers", "2"])
    seen: list[set[int]] = [set()]

    def one_worker(besides: int = 0) -> bool:
        # one read, kept: a process forking a helper shows for an instant with
        # the server's own command line
        seen[0] = children(server.pid)
        return len(seen[0]) == 1 and besides not in seen[0]

    wait_until(one_worker, 10)
    [worker] = seen[0]
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: one_worker(besides=worker), 10)
    [again] = seen[0]
    assert again != worker
    wait_until(lambda: bool(server.events("worker.restarted")), 10)  # logged after the fork
    events = server.events("worker.restarted")
    assert events and events[0]["old_pid"] == worker and events[0]["pid"] == again
    # both processes answer: many queries, all answered
    for _ in range(50):
        assert server.addresses("mail.example.com") == {"192.0.2.25"}
    assert server.stop() == 0
