"""The Prometheus collector: counters read from QueryStats and the App at scrape time."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import prometheus_client
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from geostream_dns.adapters.metrics import (
    DEFAULT_SOURCES,
    cumulative_buckets,
    make_registry,
    query_labels,
)
from geostream_dns.adapters.stats import LATENCY_BUCKETS, StatsFiles
from geostream_dns.app import App
from geostream_dns.config.settings import Settings
from geostream_dns.core.outcome import Outcome

A, AAAA, TYPE99, TYPE100 = 1, 28, 99, 100


def make_app() -> App:
    return App(Settings(listen=(), http=None))


def queries(registry: prometheus_client.CollectorRegistry, transport: str, qtype: str,
            rcode: str) -> float | None:
    return registry.get_sample_value(
        "geostream_dns_queries_total",
        {"transport": transport, "qtype": qtype, "rcode": rcode})


def test_query_labels() -> None:
    assert query_labels(A, 0) == ("A", "NOERROR")
    assert query_labels(AAAA, 3) == ("AAAA", "NXDOMAIN")
    assert query_labels(65, 5) == ("HTTPS", "REFUSED")
    assert query_labels(252, 4) == ("AXFR", "NOTIMP")
    assert query_labels(A, 16) == ("A", "BADVERS")
    assert query_labels(A, -1) == ("A", "DROPPED")
    assert query_labels(TYPE99, 11) == ("OTHER", "OTHER")
    assert query_labels(0, 0) == ("OTHER", "NOERROR")


def outcome(qtype: int, rcode: int, **route: object) -> Outcome:
    return Outcome(qtype, rcode, "example.com.", "static" if not route else "routed",  # type: ignore[arg-type]
                   "memo", **route)


def test_outcomes_collapsing_into_one_label_set_are_summed() -> None:
    app = make_app()
    app.stats.counts["udp"].update({
        outcome(A, 0): 2,
        outcome(TYPE99, 0): 3,
        outcome(TYPE100, 0): 4,
        outcome(A, -1): 5,
        outcome(A, 11): 1,
        outcome(A, 12): 6,
    })
    app.stats.counts["tcp"][outcome(AAAA, 2)] = 9
    registry = make_registry(app)
    assert queries(registry, "udp", "A", "NOERROR") == 2
    assert queries(registry, "udp", "OTHER", "NOERROR") == 7
    assert queries(registry, "udp", "A", "DROPPED") == 5
    assert queries(registry, "udp", "A", "OTHER") == 7
    assert queries(registry, "tcp", "AAAA", "SERVFAIL") == 9
    assert queries(registry, "tcp", "A", "NOERROR") is None
    # Counts survive the fold: a second scrape reads the same totals.
    assert queries(make_registry(app), "udp", "OTHER", "NOERROR") == 7


def test_routing_decisions_and_fail_open_come_from_outcomes() -> None:
    app = make_app()
    counts = app.stats.counts["udp"]
    counts[outcome(A, 0, rule="geos", pool="eu", scope=24)] = 4
    counts[outcome(A, 0, rule="nearest", pool="eu", scope=20)] = 1
    counts[outcome(A, 0, rule="nearest", pool="us", failed_open=True)] = 2
    counts[outcome(A, 0)] = 100  # static: no decision
    registry = make_registry(app)
    value = registry.get_sample_value
    assert value("geostream_route_decisions_total", {"zone": "example.com.", "pool": "eu"}) == 5
    assert value("geostream_route_decisions_total", {"zone": "example.com.", "pool": "us"}) == 2
    assert value("geostream_route_all_down_total") == 2
    assert value("geostream_cache_requests_total", {"tier": "selection", "result": "hit"}) == 7


def test_latency_histogram_is_cumulative() -> None:
    app = make_app()
    per_bucket = [0] * (len(LATENCY_BUCKETS) + 1)
    per_bucket[0], per_bucket[2], per_bucket[-1] = 1, 2, 3  # <=10us, <=50us, >1s
    app.stats.latency_buckets[:] = per_bucket
    app.stats.latency_sum_ns = 4_500_000_000
    registry = make_registry(app)

    def bucket(le: str) -> float | None:
        return registry.get_sample_value(
            "geostream_dns_answer_duration_seconds_bucket", {"le": le})

    assert bucket("1e-05") == 1
    assert bucket("2.5e-05") == 1
    assert bucket("5e-05") == 3
    assert bucket("1.0") == 3
    assert bucket("+Inf") == 6
    assert registry.get_sample_value("geostream_dns_answer_duration_seconds_count") == 6
    assert registry.get_sample_value("geostream_dns_answer_duration_seconds_sum") == 4.5
    assert cumulative_buckets([1, 1], (0.5,)) == [("0.5", 1.0), ("+Inf", 2.0)]


def test_counters_and_config_gauges() -> None:
    app = make_app()
    app.stats.errors, app.stats.tcp_connections, app.stats.tcp_idle_closed = 1, 4, 2
    app.reload_errors = 3
    registry = make_registry(app)
    value = registry.get_sample_value
    assert value("geostream_dns_query_errors_total") == 1
    assert value("geostream_dns_tcp_connections_total") == 4
    assert value("geostream_dns_tcp_idle_closed_total") == 2
    assert value("geostream_config_reload_errors_total") == 3
    assert value("geostream_config_generation") == 0
    assert value("geostream_config_zones") == 0
    assert value("geostream_config_record_sets") == 0
    assert value("geostream_ready") == 0
    # Read at scrape time, not at registration.
    app.ready, app.generation = True, 7
    assert value("geostream_ready") == 1
    assert value("geostream_config_generation") == 7


def test_each_app_has_its_own_registry_and_sources_can_be_added() -> None:
    def route_metrics(app: App) -> Iterator[Metric]:
        yield GaugeMetricFamily("geostream_test_source", "A test source.", value=42)

    first, second = make_app(), make_app()
    first.stats.errors = 5
    r1 = make_registry(first, [*DEFAULT_SOURCES, route_metrics])
    r2 = make_registry(second)
    assert r1 is not prometheus_client.REGISTRY
    assert r1.get_sample_value("geostream_dns_query_errors_total") == 5
    assert r2.get_sample_value("geostream_dns_query_errors_total") == 0
    assert r1.get_sample_value("geostream_test_source") == 42
    assert r2.get_sample_value("geostream_test_source") is None
    assert prometheus_client.REGISTRY.get_sample_value("geostream_ready") is None


def test_workers_share_their_totals_and_worker_0_adds_them_up(tmp_path: pathlib.Path) -> None:
    first, second = make_app(), make_app()
    first.stats.counts["udp"][outcome(A, 0)] = 2
    second.stats.counts["udp"][outcome(A, 0)] = 3
    second.stats.counts["tcp"][outcome(AAAA, 3)] = 4
    second.stats.errors, second.stats.truncated = 1, 5
    second.stats.size_buckets["udp"][2] = 3
    second.stats.size_sum["udp"] = 600
    second.stats.extra = {"geoip_hit": 7}
    files = StatsFiles(tmp_path, leader=4242)
    files.write(1, second.stats)
    StatsFiles(tmp_path, leader=1).write(1, second.stats)  # another server's: not read
    first.stats_files = files
    registry = make_registry(first)
    value = registry.get_sample_value
    assert queries(registry, "udp", "A", "NOERROR") == 5
    assert queries(registry, "tcp", "AAAA", "NXDOMAIN") == 4
    assert value("geostream_dns_query_errors_total") == 1
    assert value("geostream_dns_truncated_total") == 5
    assert value("geostream_dns_response_size_bytes_sum", {"transport": "udp"}) == 600
    assert value("geostream_dns_response_size_bytes_count", {"transport": "udp"}) == 3
    assert value("geostream_cache_requests_total", {"tier": "geoip", "result": "hit"}) == 7


def test_build_info_and_zone_problems() -> None:
    from geostream_dns.errors import Problem
    from geostream_dns.version import VERSION

    app = make_app()
    app.problems = [Problem("zones/a.yaml", 3, "records.x", "bad"),
                    Problem("zones/a.yaml", 9, "records.y", "bad"),
                    Problem("zones/b.yaml", 1, "zone", "bad")]
    registry = make_registry(app)
    assert registry.get_sample_value("geostream_build_info", {"version": VERSION}) == 1
    assert registry.get_sample_value("geostream_config_zone_problems") == 2
