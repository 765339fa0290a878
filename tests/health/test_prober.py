"""The prober and the health manager in-process, against real endpoints.

Each test builds a snapshot from a YAML zone whose pool values are loopback
addresses (127.0.0.2, 127.0.0.3, ...) with an http check on a port the
farm's endpoints listen on (interval 200 ms, fall 2, rise 2), wires a
`WorldRef` and a `HealthManager` as `App` does, and runs the manager inside
`asyncio.run`. Answers are read by driving `resolve` with query bytes, so
"the value left the answers" means the very DNS response a client would get.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import pathlib
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator

import dns.message
import pytest

from geostream_dns.adapters import probes
from geostream_dns.adapters.drain import DrainFile
from geostream_dns.adapters.health_manager import HealthManager
from geostream_dns.adapters.prober import LoopLagMonitor, targets_of
from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.build import build_snapshot
from geostream_dns.core.health import HealthKey, HealthView
from geostream_dns.core.resolve import resolve
from geostream_dns.core.snapshot import Snapshot
from geostream_dns.core.world import World, WorldRef
from tests.health.farm import Cert, Endpoint, Farm
from tests.health.zone import EU, US, failover_zone
from tests.support.harness import ROOT, free_port, stop_process

ORIGIN = "example.com."
INTERVAL, RISE, FALL = 0.2, 2, 2
# The targets are INTERVAL * FALL + 1 s (1.4 s here) to fail over and INTERVAL * RISE + 1 s from
# the first passing probe; the suite asserts a generous bound so that a loaded CI
# machine is not flaky (typical: 0.4-0.6 s); `make failover-drill` reports figures.
FAILOVER_BOUND = 5.0
RECOVERY_BOUND = 5.0
CLIENT = "127.0.0.1"


def zone_yaml(port: int, us: Iterable[str] = US, interval: str = "200ms",
              records: str | None = None, checks: dict[str, str] | None = None) -> str:
    """The failover zone (tests/health/zone.py) with `www` and `api`, probed at `interval`."""
    return failover_zone(port, interval=interval, timeout="150ms", us=us, api=True,
                         records=records, checks=checks)


def snapshot_of(text: str, generation: int = 1) -> Snapshot:
    zone = load_zone_text(text, f"{ORIGIN}yaml")
    return build_snapshot([zone], generation)


def _ignore(view: HealthView) -> None:
    """A health manager's listener for tests that read `manager.view` instead."""


def key(value: str) -> HealthKey:
    return (ORIGIN, "web", value)  # type: ignore[return-value]


class Rig:
    """WorldRef + HealthManager, wired as App wires them."""

    def __init__(self, state_dir: pathlib.Path, snapshot: Snapshot) -> None:
        self.worlds = WorldRef(World.create(snapshot))
        self.manager = HealthManager(self.worlds.use_health, DrainFile(state_dir))
        self.all_down = 0  # answers that failed open
        assert self.manager.prober is not None
        self.prober = self.manager.prober
        self.snapshot = snapshot

    def use(self, snapshot: Snapshot) -> None:
        """Publish a snapshot as App.publish does: world first, then the prober."""
        self.snapshot = snapshot
        self.worlds.use_snapshot(snapshot)
        self.manager.sync(snapshot)

    def answer(self, name: str = "www.example.com.") -> set[str]:
        query = dns.message.make_query(name, "A")
        wire, outcome = resolve(query.to_wire(), CLIENT, self.worlds.world)
        assert wire is not None
        self.all_down += outcome.failed_open
        reply = dns.message.from_wire(wire)
        return {rd.to_text() for rrset in reply.answer for rd in rrset}

    def up(self, value: str) -> bool:
        return self.prober.states[key(value)].up

    async def until(self, predicate: Callable[[], bool], timeout: float,
                    what: str = "") -> float:
        """Seconds until `predicate` holds (polled every 10 ms), or fail."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not within {timeout} s: {what or predicate}; "
                                     f"www={sorted(self.answer())} "
                                     f"down={sorted(k[2] for k in self.manager.down)}")
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    async def checked_once(self) -> None:
        await self.until(lambda: all(s.checks >= 1 for s in self.prober.states.values()),
                         2.0, "every target probed once")

    def stop(self) -> None:
        self.manager.stop()


@pytest.fixture
def port() -> int:
    return free_port(*US, EU)


@pytest.fixture
def web(endpoints: Farm, port: int) -> dict[str, Endpoint]:
    return {host: endpoints.endpoint(host, port) for host in (*US, EU)}


# -- failover and recovery -------------------------------------------------------------------


def test_a_stopped_endpoint_leaves_the_answers_at_its_transition_and_comes_back(
        tmp_path: pathlib.Path, port: int, web: dict[str, Endpoint]) -> None:
    async def main() -> dict[str, float]:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.manager.start()
        rig.use(rig.snapshot)
        try:
            assert rig.answer() == set(US)  # a target starts up
            await rig.checked_once()
            assert rig.answer() == set(US)
            assert rig.manager.down == frozenset()
            generation = rig.manager.generation

            victim = web["127.0.0.3"]
            stopped = time.monotonic()
            victim.stop()
            # Poll the state and the answers together: there is no moment at which
            # the target is down and the resolver still hands it out.
            while rig.up("127.0.0.3"):
                assert time.monotonic() - stopped < 5.0, "never went down"
                await asyncio.sleep(0.005)
            assert rig.answer() == {"127.0.0.2"}, "the next query must see the change"
            failover = time.monotonic() - stopped
            assert rig.manager.down == {key("127.0.0.3")}
            assert rig.manager.generation > generation
            state = rig.prober.states[key("127.0.0.3")]
            assert state.failures >= FALL
            assert state.last is not None and state.last.reason == "connection refused"
            assert rig.prober.stats.transitions == {(key("127.0.0.3"), "down"): 1}
            # the other value kept passing
            assert rig.up("127.0.0.2")

            restarted = time.monotonic()
            victim.start()
            await rig.until(lambda: "127.0.0.3" in rig.answer(), 12.0, "recovery")
            back = time.monotonic()
            first_pass = victim.seen_since(restarted)[0].at
            assert rig.up("127.0.0.3")
            assert rig.answer() == set(US)
            assert rig.manager.down == frozenset()
            assert rig.prober.stats.transitions == {(key("127.0.0.3"), "down"): 1,
                                                   (key("127.0.0.3"), "up"): 1}
            assert rig.prober.stats.checks[True] > 0 and rig.prober.stats.checks[False] >= FALL
            return {"failover": failover, "recovery_after_first_pass": back - first_pass}
        finally:
            rig.stop()

    times = asyncio.run(main())
    assert times["failover"] <= FAILOVER_BOUND, times
    assert times["recovery_after_first_pass"] <= RECOVERY_BOUND, times


def test_a_failing_status_or_body_takes_a_value_down_too(
        tmp_path: pathlib.Path, port: int, web: dict[str, Endpoint]) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.use(rig.snapshot)
        try:
            await rig.checked_once()
            web["127.0.0.2"].status = 503
            web["127.0.0.3"].body = b"starting"
            await rig.until(lambda: rig.answer() == {EU}, 5.0, "both us values down")
            reasons = {v: rig.prober.states[key(v)].last.reason  # type: ignore[union-attr]
                       for v in US}
            assert reasons == {"127.0.0.2": "HTTP 503, expected 200",
                               "127.0.0.3": "HTTP 200, body lacks 'ok'"}
            # what the endpoints saw: the check's path and Host header
            seen = web["127.0.0.2"].requests[-1]
            assert (seen.path, seen.host) == ("/healthz", f"www.example.com:{port}")
        finally:
            rig.stop()

    asyncio.run(main())


def test_fallback_then_fail_open_when_the_whole_chain_is_down(
        tmp_path: pathlib.Path, port: int, web: dict[str, Endpoint]) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.use(rig.snapshot)
        try:
            await rig.checked_once()
            assert rig.answer("api.example.com.") == set(US)  # status: down stays out
            for host in US:
                web[host].stop()
            await rig.until(lambda: rig.answer() == {EU}, 5.0, "fallback to eu")
            assert rig.answer("api.example.com.") == {EU}
            assert rig.all_down == 0

            web[EU].stop()
            await rig.until(lambda: not rig.up(EU), 5.0, "eu down")
            # fail open: the record's own values when it has them ...
            assert rig.answer() == {"192.0.2.10"}
            # ... else every value of the pool the rule picked (not the fallback),
            # ignoring health and status: down
            assert rig.answer("api.example.com.") == {*US, "127.0.0.5"}
            assert rig.all_down >= 2

            web[EU].start()
            await rig.until(lambda: rig.answer() == {EU}, 12.0, "eu back")
            assert rig.answer("api.example.com.") == {EU}
        finally:
            rig.stop()

    asyncio.run(main())


# -- drains -----------------------------------------------------------------------------------


def test_a_drain_beats_the_prober_at_once_and_survives_a_new_manager(
        tmp_path: pathlib.Path, port: int, web: dict[str, Endpoint]) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.use(rig.snapshot)
        try:
            await rig.checked_once()
            assert rig.manager.set_drained("us-east-1", True, author="test")
            assert rig.answer() == {EU}  # no probe needed
            assert not rig.manager.set_drained("us-east-1", True)  # already
            assert rig.up("127.0.0.2")  # the monitor still says up: the drain wins
            assert DrainFile(tmp_path).load() == {"us-east-1"}

            # a restart (a new manager on the same state dir) keeps the drain
            again = HealthManager(_ignore, DrainFile(tmp_path), probe=False)
            assert again.drained == {"us-east-1"}
            assert again.view.drained == {"us-east-1"}

            # both regions drained: fail open, as when the monitors say down
            rig.manager.set_drained("eu-central-1", True)
            assert rig.answer() == {"192.0.2.10"}
            rig.manager.set_drained("eu-central-1", False)
            assert rig.manager.set_drained("us-east-1", False)
            assert rig.answer() == set(US)
            assert DrainFile(tmp_path).load() == frozenset()
        finally:
            rig.stop()

    asyncio.run(main())


def test_a_broken_drain_file_drains_nothing(tmp_path: pathlib.Path) -> None:
    (tmp_path / "drained.json").write_text('{"drained": ["us-east-1"')  # cut short
    manager = HealthManager(_ignore, DrainFile(tmp_path), probe=False)
    assert manager.drained == frozenset()
    (tmp_path / "drained.json").write_text('{"drained": ["us-east-1", 7, null]}')
    drained = manager.read_drains()  # another process wrote it: picked up, junk ignored
    assert drained is not None and manager.apply_drains(drained)
    assert manager.drained == {"us-east-1"}
    assert manager.view.drained == {"us-east-1"}


# -- IPv6 -------------------------------------------------------------------------------------


def test_an_aaaa_value_is_probed_over_ipv6_and_fails_over(
        tmp_path: pathlib.Path, endpoints: Farm) -> None:
    port = free_port("::1")
    ep = endpoints.endpoint("::1", port)
    records = textwrap.dedent("""\
        www:
          type: AAAA
          values: ["2001:db8::10"]
          routing:
            pools:
              p: {answer: all, values: [{value: "::1", healthcheck: web}]}
            rules:
              - pool: p
        """)
    snapshot = snapshot_of(zone_yaml(port, records=records))
    v6 = (ORIGIN, "web", "::1")
    assert set(targets_of(snapshot)) == {v6}

    async def main() -> None:
        rig = Rig(tmp_path, snapshot)
        rig.use(snapshot)
        try:
            await rig.checked_once()
            assert rig.prober.states[v6].last.ok  # type: ignore[union-attr]
            seen = ep.requests[-1]
            assert (seen.path, seen.host) == ("/healthz", f"www.example.com:{port}")

            def aaaa() -> set[str]:
                query = dns.message.make_query("www.example.com.", "AAAA")
                wire, _ = resolve(query.to_wire(), CLIENT, rig.worlds.world)
                assert wire is not None
                reply = dns.message.from_wire(wire)
                return {rd.to_text() for rrset in reply.answer for rd in rrset}

            assert aaaa() == {"::1"}
            ep.stop()
            await rig.until(lambda: not rig.prober.states[v6].up, 5.0, "::1 down")
            assert aaaa() == {"2001:db8::10"}  # fail open to the record's own value
        finally:
            rig.stop()

    asyncio.run(main())


# -- reloads ----------------------------------------------------------------------------------


def test_resync_keeps_state_and_removing_a_target_stops_probing_it(
        tmp_path: pathlib.Path, port: int, web: dict[str, Endpoint]) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.use(rig.snapshot)
        try:
            await rig.checked_once()
            web["127.0.0.3"].stop()
            await rig.until(lambda: not rig.up("127.0.0.3"), 5.0, "down")
            states = dict(rig.prober.states)
            tasks = dict(rig.prober.tasks)
            transitions = dict(rig.prober.stats.transitions)

            # the same snapshot again: nothing restarts, nothing resets
            rig.use(rig.snapshot)
            assert rig.prober.states == states
            assert all(rig.prober.states[k] is s for k, s in states.items())
            assert rig.prober.tasks == tasks
            assert all(not t.done() for t in rig.prober.tasks.values())
            assert rig.answer() == {"127.0.0.2"}

            # a rebuilt snapshot of the same zone (a reload): health is kept
            rig.use(snapshot_of(zone_yaml(port), generation=2))
            assert all(rig.prober.states[k] is s for k, s in states.items())
            assert not rig.up("127.0.0.3")
            assert rig.answer() == {"127.0.0.2"}
            assert rig.prober.stats.transitions == transitions

            # a new pace for the check: the state stays, the pace changes
            rig.use(snapshot_of(zone_yaml(port, interval="300ms"), generation=3))
            assert not rig.up("127.0.0.3")
            assert rig.prober.states[key("127.0.0.3")] is states[key("127.0.0.3")]
            assert rig.prober.states[key("127.0.0.3")].interval == pytest.approx(0.3)
            assert rig.answer() == {"127.0.0.2"}

            # 127.0.0.3 leaves the zone: no state, no task, no probes, not down
            web["127.0.0.3"].start()
            rig.use(snapshot_of(zone_yaml(port, us=["127.0.0.2"]), generation=4))
            assert key("127.0.0.3") not in rig.prober.states
            assert key("127.0.0.3") not in rig.prober.tasks
            assert set(rig.prober.states) == set(targets_of(rig.snapshot))
            assert rig.manager.down == frozenset()
            await asyncio.sleep(0.1)  # a probe already on the wire may still land
            left = time.monotonic()
            await asyncio.sleep(4 * INTERVAL)
            assert web["127.0.0.3"].seen_since(left) == []
            assert web["127.0.0.2"].seen_since(left), "the remaining target is still probed"
        finally:
            rig.stop()

    asyncio.run(main())


def test_targets_are_distinct_per_zone_check_and_value(port: int) -> None:
    snapshot = snapshot_of(zone_yaml(port))
    # www and api share 127.0.0.2-4 under the same check: probed once each;
    # 127.0.0.5 has no check and is not probed
    assert set(targets_of(snapshot)) == {key(v) for v in (*US, EU)}


def test_stop_cancels_every_probe_task(tmp_path: pathlib.Path, port: int,
                                       web: dict[str, Endpoint]) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, snapshot_of(zone_yaml(port)))
        rig.use(rig.snapshot)
        tasks = list(rig.prober.tasks.values())
        assert len(tasks) == 3
        rig.stop()
        await asyncio.sleep(0)
        assert all(t.cancelled() or t.done() for t in tasks)
        assert rig.prober.tasks == {}

    asyncio.run(main())


# -- the loop stays responsive ----------------------------------------------------------


@pytest.fixture
def farm_process(cert: Cert) -> Iterator[Callable[[int, list[str], int, list[str]], None]]:
    """Endpoints in a process of their own (tests/health/farm.py)."""
    started: list[subprocess.Popen[str]] = []

    def _start(http_port: int, http_hosts: list[str], https_port: int,
               https_hosts: list[str]) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.health.farm", "--cert", str(cert.cert),
             "--key", str(cert.key), "--http", str(http_port), *http_hosts,
             "--https", str(https_port), *https_hosts],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        assert ready and proc.stdout.readline().strip() == "ready", "farm did not start"

    yield _start
    for proc in started:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # the farm's signal to go
        stop_process(proc)
        proc.stdout.close()


LAG_BOUND = 0.4  # seconds


def test_fifty_targets_with_https_keep_the_event_loop_lag_small(
        tmp_path: pathlib.Path, farm_process: Callable[[int, list[str], int, list[str]], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20 http, 20 https (verify off) and 10 https (verify on: self-signed, so
    they fail and go down) targets, probed every 500 ms for 3 s. The endpoints
    run in another process: only the prober's own work is on this loop. The
    timeout leaves room for a loaded machine: a probe that times out would count
    as a failure and could take a healthy check down."""
    http_hosts = [f"127.0.0.{i}" for i in range(10, 30)]
    https_hosts = [f"127.0.0.{i}" for i in range(30, 60)]
    http_port = free_port(*http_hosts)
    https_port = free_port(*https_hosts)
    farm_process(http_port, http_hosts, https_port, https_hosts)
    monkeypatch.setattr(probes, "_contexts", {})  # the CA store load counts too

    def pool(name: str, check: str, hosts: list[str]) -> str:
        values = ", ".join(f"{{value: {h}, healthcheck: {check}}}" for h in hosts)
        return (f"{name}:\n  type: A\n  routing:\n    pools:\n      p:\n"
                f"        answer: all\n        values: [{values}]\n"
                f"    rules:\n      - pool: p\n")

    timing = "interval: 500ms, timeout: 400ms"
    checks = {"plain": f"{{protocol: http, port: {http_port}, {timing}}}",
              "secure": f"{{protocol: https, port: {https_port}, host: www.example.com, "
                        f"verify_tls: false, {timing}}}",
              "strict": f"{{protocol: https, port: {https_port}, host: www.example.com, "
                        f"{timing}}}"}
    text = zone_yaml(http_port, records=pool("a", "plain", http_hosts)
                     + pool("b", "secure", https_hosts[:20])
                     + pool("c", "strict", https_hosts[20:]), checks=checks)
    snapshot = snapshot_of(text)
    assert len(targets_of(snapshot)) == 50

    async def main() -> tuple[LoopLagMonitor, LoopLagMonitor, dict[bool, int], set[str]]:
        rig = Rig(tmp_path, snapshot)
        rig.manager.start()  # the server's own monitor: a 50 ms timer
        # A 1 ms timer too: the 50 ms one misses a stall that ends before it is due.
        fine = LoopLagMonitor(period=0.001)
        fine.start()
        rig.use(snapshot)
        try:
            await asyncio.sleep(3.0)
            down = {k[1] for k in rig.manager.down}
            return rig.manager.lag, fine, dict(rig.prober.stats.checks), down
        finally:
            fine.stop()
            rig.stop()

    lag, fine, checks_done, down_checks = asyncio.run(main())
    print(f"\nloop lag, 50 targets (30 https) probed every 500 ms for 3 s: "
          f"50 ms monitor max {lag.max_lag * 1000:.1f} ms "
          f"(mean {lag.lag_sum / max(lag.samples, 1) * 1000:.2f} ms, {lag.samples} samples); "
          f"1 ms monitor max {fine.max_lag * 1000:.1f} ms "
          f"(mean {fine.lag_sum / max(fine.samples, 1) * 1000:.2f} ms, {fine.samples} samples); "
          f"probes pass={checks_done[True]} fail={checks_done[False]}")
    assert checks_done[True] >= 40 * 3, checks_done  # ~6 rounds each in 3 s
    assert checks_done[False] >= 10 * 3, checks_done
    assert down_checks == {"strict"}  # self-signed fails verification, the rest pass
    assert lag.samples >= 40
    # No gross stall (a blocking CA-store load or handshake costs 100s of ms); the
    # bound leaves room for a loaded CI machine, whose scheduler alone can delay a
    # timer by tens of milliseconds. The figure itself is printed above and
    # reported by the benchmarks, not asserted tightly here.
    assert lag.max_lag < LAG_BOUND, f"the event loop stalled {lag.max_lag * 1000:.1f} ms"
    assert fine.max_lag < LAG_BOUND, f"the event loop stalled {fine.max_lag * 1000:.1f} ms"


def test_concurrent_drains_never_undo_each_other(tmp_path: pathlib.Path) -> None:
    """Three drains at once, and a refresh racing them: all three stay drained."""

    async def main() -> None:
        manager = HealthManager(_ignore, DrainFile(tmp_path), probe=False)
        await asyncio.gather(manager.drain("a", True), manager.refresh_drains(),
                             manager.drain("b", True), manager.drain("c", True),
                             manager.refresh_drains())
        assert manager.drained == {"a", "b", "c"}
        assert manager.view.drained == {"a", "b", "c"}
        assert DrainFile(tmp_path).load() == {"a", "b", "c"}
        await asyncio.gather(manager.drain("a", False), manager.drain("c", False))
        assert manager.drained == {"b"} and DrainFile(tmp_path).load() == {"b"}

    asyncio.run(main())
