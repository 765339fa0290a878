"""Prometheus metrics, read from the running App only when `/metrics` is scraped.

How this works: the transports count queries in plain integers
(`adapters.stats.QueryStats`) and never touch prometheus_client, so counting
costs a dictionary update per query. `AppCollector.collect()` runs at scrape
time and turns those integers, and the App's configuration state, into metric
families. It is a list of small *sources*, each a function `(app) -> metric
families`; a later subsystem (health prober, cache, RRL) adds its own source
to the list instead of editing this one.

Every App gets its own `CollectorRegistry` (never the process-global default),
so tests and several Apps in one process do not share or clash over metrics.

Labels come from small fixed sets: query types and rcodes outside the known
sets are counted as ``OTHER``, so several raw counter keys can collapse into
one label set; their counts are summed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from geostream_dns.adapters.stats import LATENCY_BUCKETS, SIZE_BUCKETS
from geostream_dns.core.outcome import COMPUTED, DROPPED, NONE, ROUTED, Outcome

if TYPE_CHECKING:
    from geostream_dns.app import App

MetricSource = Callable[["App"], Iterable[Metric]]

# Label values for query types and response codes; anything else is "OTHER".
QTYPE_LABELS: dict[int, str] = {
    int(t): dns.rdatatype.to_text(t)
    for t in (
        dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.MX,
        dns.rdatatype.TXT, dns.rdatatype.NS, dns.rdatatype.SOA, dns.rdatatype.SRV,
        dns.rdatatype.CAA, dns.rdatatype.PTR, dns.rdatatype.DS, dns.rdatatype.ANY,
        dns.rdatatype.DNSKEY, dns.rdatatype.HTTPS, dns.rdatatype.SVCB,
        dns.rdatatype.AXFR, dns.rdatatype.IXFR,
    )
}
RCODE_LABELS: dict[int, str] = {
    int(r): dns.rcode.to_text(r)
    for r in (
        dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED, dns.rcode.FORMERR,
        dns.rcode.NOTIMP, dns.rcode.SERVFAIL, dns.rcode.BADVERS,
    )
}
# QueryStats stores rcode -1 (the packet was dropped, no reply) as 0xFF.
RCODE_LABELS[0xFF] = "DROPPED"
OTHER = "OTHER"


def query_labels(qtype: int, rcode: int) -> tuple[str, str]:
    """(qtype, rcode) labels; a dropped query (rcode -1) is "DROPPED"."""
    return QTYPE_LABELS.get(qtype, OTHER), RCODE_LABELS.get(rcode & 0xFF, OTHER)


def cumulative_buckets(per_bucket: Sequence[int],
                       bounds: Sequence[float] = LATENCY_BUCKETS) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one is +Inf) -> Prometheus cumulative buckets."""
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*bounds, float("inf")), per_bucket, strict=True):
        total += count
        buckets.append((floatToGoString(bound), float(total)))
    return buckets


# -- sources -------------------------------------------------------------


def query_metrics(app: App) -> Iterator[Metric]:
    """Queries by transport, qtype and rcode; routing decisions and answer tiers, all
    read from the outcomes the transports counted (every worker's, with --workers)."""
    stats = app.total_stats()
    queries = CounterMetricFamily(
        "geostream_dns_queries", "DNS queries answered (or dropped), by transport, "
        "query type and response code.", labels=["transport", "qtype", "rcode"])
    decisions = CounterMetricFamily(
        "geostream_route_decisions", "Routed answers by zone and the pool that answered "
        "(pool \"\" when the record's own values answered).", labels=["zone", "pool"])
    by_query: dict[tuple[str, str, str], int] = {}
    by_pool: dict[tuple[str, str], int] = {}
    by_tier: dict[tuple[str, str], int] = {}
    ecs = {"present": 0, "absent": 0}
    all_down = 0
    cookies = 0
    for (transport, values), count in stats.folded.items():
        outcome = Outcome(*values)  # type: ignore[arg-type]
        labels = (transport, *query_labels(outcome.qtype, outcome.rcode))
        by_query[labels] = by_query.get(labels, 0) + count
        if outcome.cookie:
            cookies += count
        if outcome.path == DROPPED:
            continue
        ecs["present" if outcome.scope is not None else "absent"] += count
        if outcome.tier == NONE:
            continue
        answer_tier = ("answer", "hit" if outcome.tier != COMPUTED else "miss")
        by_tier[answer_tier] = by_tier.get(answer_tier, 0) + count
        routed = outcome.rule is not None or outcome.path == ROUTED
        if routed:
            zone_pool = (outcome.zone, outcome.pool or "")
            by_pool[zone_pool] = by_pool.get(zone_pool, 0) + count
            selection = ("selection", "hit" if outcome.path == ROUTED else "miss")
            by_tier[selection] = by_tier.get(selection, 0) + count
        if outcome.failed_open:
            all_down += count
    for query_key, count in sorted(by_query.items()):
        queries.add_metric(list(query_key), count)
    yield queries
    for pool_key, count in sorted(by_pool.items()):
        decisions.add_metric(list(pool_key), count)
    yield decisions
    yield CounterMetricFamily(
        "geostream_route_all_down",
        "Routed answers that failed open because every pool of the chain was down.",
        value=all_down)
    with_ecs = CounterMetricFamily(
        "geostream_dns_ecs_queries", "Queries answered with or without an EDNS Client "
        "Subnet option.", labels=["ecs"])
    for state, count in sorted(ecs.items()):
        with_ecs.add_metric([state], count)
    yield with_ecs
    extra = stats.extra
    cache = CounterMetricFamily(
        "geostream_cache_requests", "Look-ups in the caches by tier and result: answer "
        "(pre-rendered or memoized answers), selection (the per-client-network routing "
        "memo), geoip (the per-network GeoIP memo), redis (the fleet's answer cache of "
        "compiled zones: hit, miss, corrupt).", labels=["tier", "result"])
    by_tier[("geoip", "hit")] = extra.get("geoip_hit", 0)
    by_tier[("geoip", "miss")] = extra.get("geoip_miss", 0)
    if app.link is not None:
        for result in ("hit", "miss", "corrupt"):
            by_tier[("redis", result)] = extra.get(f"redis_{result}", 0)
    for tier_key, count in sorted(by_tier.items()):
        cache.add_metric(list(tier_key), count)
    yield cache
    yield GaugeMetricFamily("geostream_geoip_memo_entries",
                            "Client networks in the GeoIP memo (worker 0's).",
                            value=len(app.world.geo))
    sizes = HistogramMetricFamily(
        "geostream_dns_response_size_bytes", "Sizes of the replies sent, by transport.",
        labels=["transport"])
    for transport in ("udp", "tcp"):
        sizes.add_metric([transport], cumulative_buckets(stats.size_buckets[transport],
                                                         SIZE_BUCKETS),
                         sum_value=stats.size_sum[transport])
    yield sizes
    by_family = CounterMetricFamily(
        "geostream_dns_queries_by_family", "DNS queries received, by transport and the "
        "address family of the socket they came to (ipv4, ipv6).",
        labels=["transport", "family"])
    for (transport, family), count in sorted(stats.families().items()):
        by_family.add_metric([transport, family], count)
    yield by_family
    yield CounterMetricFamily(
        "geostream_dns_truncated", "UDP replies sent with TC=1 (the answer did not fit; "
        "the client retries over TCP).", value=stats.truncated)
    yield CounterMetricFamily(
        "geostream_dns_udp_unsent", "UDP replies not sent: the socket's send buffer was "
        "full, or the kernel refused the destination.", value=stats.unsent)
    rrl = CounterMetricFamily(
        "geostream_rrl_actions", "UDP responses held back by response-rate limiting: "
        "dropped, or slipped (sent truncated, or BADCOOKIE to a client with a cookie).",
        labels=["action"])
    for action in ("drop", "slip"):
        rrl.add_metric([action], extra.get(f"rrl_{action}", 0))
    yield rrl
    yield GaugeMetricFamily(
        "geostream_rrl_accounts", "Response-rate limiting accounts (client network and "
        "response kind) held, every worker's.", value=extra.get("rrl_accounts", 0))
    yield CounterMetricFamily(
        "geostream_dns_cookie_valid_queries", "Queries that held a valid server cookie "
        "(DNS Cookies; never rate limited).", value=cookies)

    if app.query_log is not None:
        yield CounterMetricFamily(
            "geostream_query_log_lines", "Sampled queries written to the query log.",
            value=extra.get("query_log_written", 0))
        yield CounterMetricFamily(
            "geostream_query_log_dropped", "Sampled queries left out of the query log: its "
            "buffer was full or a write failed.", value=extra.get("query_log_dropped", 0))

    buckets = list(stats.latency_buckets)
    yield HistogramMetricFamily(
        "geostream_dns_answer_duration_seconds",
        "Time from receiving a DNS query to handing its answer to the transport.",
        buckets=cumulative_buckets(buckets), sum_value=stats.latency_sum_ns / 1e9)
    yield CounterMetricFamily(
        "geostream_dns_query_errors", "Queries that raised an unexpected error.",
        value=stats.errors)
    yield CounterMetricFamily(
        "geostream_dns_tcp_connections", "DNS-over-TCP connections accepted.",
        value=stats.tcp_connections)
    yield CounterMetricFamily(
        "geostream_dns_tcp_idle_closed", "DNS-over-TCP connections cut after the idle "
        "timeout (idle, a message sent too slowly, or replies left unread).",
        value=stats.tcp_idle_closed)
    refused = CounterMetricFamily(
        "geostream_dns_tcp_refused", "DNS-over-TCP connections cut at once by a limit "
        "(limit: total or per_client).", labels=["limit"])
    refused.add_metric(["total"], stats.tcp_refused_total)
    refused.add_metric(["per_client"], stats.tcp_refused_per_client)
    yield refused


def config_metrics(app: App) -> Iterator[Metric]:
    from geostream_dns.adapters.stores import UNREACHABLE
    from geostream_dns.version import VERSION

    yield _info(VERSION)
    broken = {p.file for p in app.problems if p.path != UNREACHABLE}
    yield GaugeMetricFamily(
        "geostream_config_zone_problems", "Zones (files) whose newest version could not "
        "be loaded: the last good version, if any, keeps serving.", value=len(broken))
    snapshot = app.world.snapshot
    yield GaugeMetricFamily(
        "geostream_config_generation", "Generation of the configuration being served.",
        value=app.generation)
    yield CounterMetricFamily(
        "geostream_config_reload_errors", "Reloads that found invalid zones or failed.",
        value=app.reload_errors)
    yield GaugeMetricFamily(
        "geostream_config_zones", "Zones being served.", value=len(snapshot.zones))
    yield GaugeMetricFamily(
        "geostream_config_record_sets", "Record sets being served, over all zones.",
        value=snapshot.record_sets)
    yield GaugeMetricFamily(
        "geostream_ready", "1 once a configuration is loaded and answering, else 0.",
        value=1 if app.ready else 0)


def health_metrics(app: App) -> Iterator[Metric]:
    """Targets as routing sees them (in a fleet: the sites' verdicts combined), each
    live site's verdict, this server's probes, and drained regions."""
    from geostream_dns.adapters.prober import LATENCY_BUCKETS as PROBE_BUCKETS

    manager = app.health
    down = manager.view.down
    targets = sorted(app.world.snapshot.health_targets)
    up = GaugeMetricFamily("geostream_health_target_up",
                           "1 while a health-check target counts as up (in a fleet: by the "
                           "quorum of the live sites' verdicts), else 0.",
                           labels=["zone", "check", "target"])
    for key in targets:
        up.add_metric(list(key), 0 if key in down else 1)
    yield up
    transitions = CounterMetricFamily(
        "geostream_health_transitions", "Changes of a target's state as routing obeys it, "
        "by new state.", labels=["zone", "check", "target", "to"])
    for ((zone, check, target), to), count in sorted(manager.transitions.items()):
        transitions.add_metric([zone, check, target, to], count)
    yield transitions
    fleet = app.fleet
    if fleet is not None:
        site_up = GaugeMetricFamily(
            "geostream_health_site_up", "Each live site's verdict on a target: 1 up, 0 down.",
            labels=["zone", "check", "target", "site"])
        wanted = set(targets)
        for site in sorted(fleet.live_sites):
            for key, is_up in sorted(fleet.verdicts.get(site, {}).items()):
                if key in wanted:
                    site_up.add_metric([*key, site], 1 if is_up else 0)
        yield site_up
        yield GaugeMetricFamily("geostream_health_sites_live",
                                "Sites whose active prober heartbeats (under 5 s old).",
                                value=len(fleet.live_sites))
        yield GaugeMetricFamily("geostream_health_probe_lease",
                                "1 while this server holds its site's probe lease.",
                                value=1 if fleet.leader else 0)
    prober = manager.prober
    if prober is not None:
        stats = prober.stats
        yield HistogramMetricFamily(
            "geostream_health_check_duration_seconds", "Duration of health probes.",
            buckets=cumulative_buckets(stats.latency_buckets, PROBE_BUCKETS),
            sum_value=stats.latency_sum)
        checks = CounterMetricFamily("geostream_health_checks", "Health probes by result.",
                                     labels=["result"])
        checks.add_metric(["pass"], stats.checks[True])
        checks.add_metric(["fail"], stats.checks[False])
        yield checks
    yield GaugeMetricFamily("geostream_health_generation",
                            "Generation of the health view routing reads.",
                            value=manager.generation)
    drained = GaugeMetricFamily("geostream_region_drained", "1 while a region is drained.",
                                labels=["region"])
    for region in sorted(app.world.snapshot.regions | manager.drained):
        drained.add_metric([region], 1 if region in manager.drained else 0)
    yield drained
    yield GaugeMetricFamily("geostream_event_loop_lag_max_seconds",
                            "The longest the event loop ran a timer late since start "
                            "(what any blocking work, probes included, costs DNS answers).",
                            value=manager.lag.max_lag)


def fleet_metrics(app: App) -> Iterator[Metric]:
    """The link to the fleet's Redis and the fleet's servers (with REDIS_URL only)."""
    link, fleet = app.link, app.fleet
    if link is None or fleet is None:
        return
    yield GaugeMetricFamily("geostream_redis_up", "1 while the fleet's Redis answers, else 0.",
                            value=1 if link.up else 0)
    yield CounterMetricFamily("geostream_redis_outages",
                              "Times the fleet's Redis stopped answering.", value=link.outages)
    servers = GaugeMetricFamily(
        "geostream_fleet_servers", "Live servers of the fleet by state: insync (serving the "
        "newest generation any live server serves), lagging (an older one), prober "
        "(probe-only).", labels=["state"])
    for state, count in sorted(fleet_states(fleet.servers).items()):
        servers.add_metric([state], count)
    yield servers


def fleet_states(servers: Iterable[Any]) -> dict[str, int]:
    records = list(servers)
    newest = max((s.generation for s in records if s.role == "dns"), default=0)
    counts = {"insync": 0, "lagging": 0, "prober": 0}
    for s in records:
        state = "prober" if s.role != "dns" else ("insync" if s.generation >= newest
                                                  else "lagging")
        counts[state] += 1
    return counts


def store_metrics(app: App) -> Iterator[Metric]:
    """The configuration store's link to its source (a remote store only)."""
    status = app.store.status()
    if status.reachable is None:
        return
    yield GaugeMetricFamily(
        "geostream_store_reachable",
        "1 while the configuration database (PostgreSQL) answers, else 0.",
        value=1 if status.reachable else 0)
    yield GaugeMetricFamily(
        "geostream_store_staleness_seconds",
        "Seconds since the database last confirmed the generation being served "
        "(grows while it is unreachable).",
        value=status.staleness_s or 0.0)


def alias_metrics(app: App) -> Iterator[Metric]:
    """The background resolver of ALIAS targets outside the hosted zones."""
    alias = app.alias
    targets = GaugeMetricFamily(
        "geostream_alias_targets",
        "ALIAS targets outside the hosted zones, by state: pending (never resolved: "
        "SERVFAIL), resolved, stale (the resolver fails; the last good answer is served).",
        labels=["state"])
    for state, count in sorted(alias.states().items()):
        targets.add_metric([state], count)
    yield targets
    resolutions = CounterMetricFamily(
        "geostream_alias_resolutions",
        "Background resolutions of ALIAS targets (A and AAAA), by result (ok, failed).",
        labels=["result"])
    for result in ("ok", "failed"):
        resolutions.add_metric([result], alias.counts[result])
    yield resolutions
    yield CounterMetricFamily(
        "geostream_alias_updates",
        "Times an ALIAS target's records or TTL changed and its answers were rendered again.",
        value=alias.counts["updates"])
    yield GaugeMetricFamily(
        "geostream_alias_oldest_answer_age_seconds",
        "Seconds since the oldest ALIAS target answer being served was resolved "
        "(grows while the resolver fails).",
        value=alias.oldest_answer_age())


def dnssec_metrics(app: App) -> Iterator[Metric]:
    """Signed zones: keys by state, signature expiry, rollover steps, signatures made.
    Read from what the last build used (no I/O at scrape time)."""
    builder = app.builder
    records = builder.key_records
    if not records:
        return
    yield GaugeMetricFamily("geostream_dnssec_zones_signed",
                            "Zones signed online (with DNSSEC keys).", value=len(records))
    keys = GaugeMetricFamily("geostream_dnssec_keys",
                             "DNSSEC keys by zone, role (ksk, zsk, csk) and state.",
                             labels=["zone", "role", "state"])
    counts: dict[tuple[str, str, str], int] = {}
    for zone, found in records.items():
        for r in found:
            counts[(zone, r.role, r.state)] = counts.get((zone, r.role, r.state), 0) + 1
    for labels, count in sorted(counts.items()):
        keys.add_metric(list(labels), count)
    yield keys
    expiry = GaugeMetricFamily(
        "geostream_dnssec_signature_expiry_seconds",
        "Seconds until the signatures being served expire (renewed at 7 days left).",
        labels=["zone"])
    now = time.time()
    for zone, signing in sorted(builder.signings.items()):
        expiry.add_metric([zone], signing.expiration - now)
    yield expiry
    yield CounterMetricFamily("geostream_dnssec_rollover_steps",
                              "Key rollover steps this server took.", value=app.dnssec_steps)
    made = sum(tree.signer.made for tree in app.world.snapshot.zones.values()
               if tree.signer is not None)
    yield CounterMetricFamily(
        "geostream_dnssec_signatures",
        "RRSIGs made by this process for the snapshot being served (at build time and "
        "for routed variants and denials signed when first asked).", value=made)


def latency_metrics(app: App) -> Iterator[Metric]:
    """Latency measurements: the table's size and bound, samples taken in, views."""
    service = getattr(app, "latency", None)
    if service is None:
        return
    yield GaugeMetricFamily("geostream_latency_keys",
                            "Client keys (networks and GeoIP places) with latency data.",
                            value=service.keys)
    yield GaugeMetricFamily("geostream_latency_keys_max",
                            "Client keys the latency table holds at most.",
                            value=service.max_keys)
    yield CounterMetricFamily("geostream_latency_evicted",
                              "Client keys dropped (least recently measured first) to stay "
                              "within the bound.", value=service.evicted)
    samples = CounterMetricFamily("geostream_latency_samples",
                                  "Latency samples taken in, by source (api, csv, probe, "
                                  "fleet).", labels=["source"])
    for source in ("api", "csv", "probe", "fleet"):
        samples.add_metric([source], service.samples_by_source.get(source, 0))
    yield samples
    yield CounterMetricFamily("geostream_latency_batches_dropped",
                              "Batches refused because the ingest queue was full.",
                              value=service.dropped_batches)
    view = app.world.latency
    yield GaugeMetricFamily("geostream_latency_view_generation",
                            "Generation of the latency view answers are routed with.",
                            value=view.generation)
    share = getattr(app, "latency_share", None)
    if share is not None:
        shared = CounterMetricFamily("geostream_latency_fleet_batches",
                                     "Latency batches written to and read from the fleet's "
                                     "Redis stream.", labels=["direction"])
        shared.add_metric(["sent"], share.sent)
        shared.add_metric(["received"], share.received)
        yield shared


def _info(version: str) -> Metric:
    info = GaugeMetricFamily("geostream_build_info", "The GeoStream DNS version running (1).",
                             labels=["version"])
    info.add_metric([version], 1)
    return info


DEFAULT_SOURCES: tuple[MetricSource, ...] = (query_metrics, config_metrics, health_metrics,
                                             store_metrics, fleet_metrics, alias_metrics,
                                             dnssec_metrics,
                                             latency_metrics)


class AppCollector:
    """A prometheus_client collector over an App: runs every source at scrape time."""

    def __init__(self, app: App, sources: Iterable[MetricSource] = DEFAULT_SOURCES) -> None:
        self.app = app
        self.sources: list[MetricSource] = list(sources)

    def add(self, source: MetricSource) -> None:
        self.sources.append(source)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source(self.app)

    def describe(self) -> list[Metric]:
        # Registration must not run the sources (the App may not be started yet).
        return []


def make_registry(app: App, sources: Iterable[MetricSource] = DEFAULT_SOURCES
                  ) -> CollectorRegistry:
    """A fresh registry with the App's metrics plus process and platform metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app, sources))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
