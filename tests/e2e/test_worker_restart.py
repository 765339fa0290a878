"""`--workers 2`: a worker killed with SIGKILL is started again, and answers go on."""

from __future__ import annotations

import os
import pathlib
import signal

from tests.support.harness import StartServer, wait_until


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(t) for t in text)
    return found


def test_a_killed_worker_is_started_again(start_server: StartServer) -> None:
    server = start_server(args=["--workers", "2"])
    wait_until(lambda: len(children(server.pid)) == 1, 10)
    [worker] = children(server.pid)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: len(children(server.pid)) == 1 and worker not in children(server.pid), 10)
    [again] = children(server.pid)
    assert again != worker
    wait_until(lambda: bool(server.events("worker.restarted")), 10)  # logged after the fork
    events = server.events("worker.restarted")
    assert events and events[0]["old_pid"] == worker and events[0]["pid"] == again
    # both processes answer: many queries, all answered
    for _ in range(50):
        assert server.addresses("mail.example.com") == {"192.0.2.25"}
    assert server.stop() == 0
