"""The latency table (decay, bound, checkpoint) and the checks on measurements as they
arrive (JSON batches, CSV files): no sockets, a fixed clock."""

from __future__ import annotations

import gzip
import pathlib

import pytest

from geostream_dns.adapters.latency import LatencyService, LatencyTable, decode_key, encode_key
from geostream_dns.adapters.latency_input import BadInput, check_batch, check_csv, parse_client
from geostream_dns.adapters.latency_share import decode_rows, encode_rows
from geostream_dns.core.latency import LatencyView

T0 = 1_800_000_000.0
NET = bytes([192, 0, 2])
REGIONS = {"us", "eu", "ap"}


def test_decayed_mean_and_count() -> None:
    table = LatencyTable(half_life=100.0, epoch=T0)
    table.add([NET], "eu", 10.0, 4, T0)
    table.add([NET], "eu", 40.0, 4, T0 + 100.0)  # the first four now count two
    view = table.view(T0 + 100.0)
    mean, count = view.region_stats(NET, "eu")  # type: ignore[misc]
    assert count == pytest.approx(6.0)
    assert mean == pytest.approx((10 * 2 + 40 * 4) / 6)
    later = table.view(T0 + 300.0)  # nothing new: only the count decays
    assert later.region_stats(NET, "eu") == pytest.approx((mean, 1.5))
    assert view.region_stats(NET, "us") is None and view.region_stats(b"\x01\x02\x03", "eu") is None


def test_the_least_recently_measured_key_goes_first() -> None:
    table = LatencyTable(max_keys=3, epoch=T0)
    keys = [bytes([10, 0, i]) for i in range(4)]
    for i, key in enumerate(keys[:3]):
        table.add([key], "us", 10.0, 1, T0 + i)
    table.add([keys[0]], "eu", 10.0, 1, T0 + 5)  # measured again: now the most recent
    table.add([keys[3]], "us", 10.0, 1, T0 + 6)
    view = table.view(T0 + 6)
    assert len(table) == view.keys == 3 and table.evicted == 1
    assert view.entry(keys[1]) is None
    assert all(view.entry(k) is not None for k in (keys[0], keys[2], keys[3]))
    assert set().union(*view.parents) == {bytes([10, 0])}
    assert view.has_parent(bytes([10, 0])) and not view.has_parent(bytes([10, 1]))


def test_a_view_is_immutable_while_the_table_goes_on() -> None:
    table = LatencyTable(epoch=T0)
    table.add([NET], "us", 10.0, 1, T0)
    before = table.view(T0)
    table.add([NET], "us", 90.0, 1, T0)
    table.add(["EU"], "eu", 5.0, 1, T0)
    assert before.region_stats(NET, "us") == (10.0, 1.0) and before.entry("EU") is None
    assert table.view(T0).region_stats(NET, "us") == (50.0, 2.0)


def test_weights_are_rebased_before_they_overflow() -> None:
    table = LatencyTable(half_life=1.0, epoch=T0)
    table.add([NET], "us", 10.0, 1, T0)
    table.add([NET], "us", 20.0, 1, T0 + 500.0)  # 2 ** 500 past the reference time
    assert table.epoch == T0 + 500.0
    assert table.view(T0 + 500.0).region_stats(NET, "us") == pytest.approx((20.0, 1.0))


def test_checkpoint_round_trip(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latency.json.gz"
    clock = [T0]
    service = LatencyService(LatencyTable(half_life=3600.0, epoch=T0), lambda v: None, path,
                             clock=lambda: clock[0])
    service.table.add([NET, "NA-US", "NA"], "us", 12.5, 3, T0)
    service.table.add([bytes(range(6))], "eu", 30.0, 2, T0)
    service.save()
    assert gzip.decompress(path.read_bytes()).startswith(b'{"format": 1')
    clock[0] = T0 + 3600.0
    loaded: list[LatencyView] = []
    again = LatencyService(LatencyTable(half_life=3600.0), loaded.append, path,
                           clock=lambda: clock[0])
    again.load()
    again.publish_now()
    view = loaded[-1]
    assert view.keys == 4
    assert view.region_stats(NET, "us") == pytest.approx((12.5, 1.5))  # an hour older
    assert view.region_stats(bytes(range(6)), "eu") == pytest.approx((30.0, 1.0))


def test_keys_and_rows_round_trip_through_text() -> None:
    for key in (NET, bytes(range(6)), "EU-DE-HE", "*"):
        assert decode_key(encode_key(key)) == key
    rows = [((NET, "NA-US"), "us", 12.5, 3)]
    assert decode_rows(encode_rows(rows)) == rows  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decode_key("#0102")


def test_clients() -> None:
    assert parse_client("81.2.69.7") == bytes([81, 2, 69])
    assert parse_client("81.2.69.0/25") == bytes([81, 2, 69])
    assert parse_client("2001:db8:1:2::/64") == bytes.fromhex("20010db80001")
    assert parse_client("EU-GB") == ("EU-GB", "EU")
    assert parse_client("NA-US-CA") == ("NA-US-CA", "NA-US", "NA")
    with pytest.raises(ValueError, match="wider than /24"):
        parse_client("81.2.0.0/16")
    with pytest.raises(ValueError, match="not a continent code"):
        parse_client("XX-GB")


def test_a_batch_is_checked_whole() -> None:
    good = {"samples": [{"client": "81.2.69.0/24", "region": "eu", "rtt_ms": 23.5}]}
    (sample,) = check_batch(good, REGIONS, None)
    assert (sample.region, sample.rtt_ms, sample.count) == ("eu", 23.5, 1)
    with pytest.raises(BadInput) as bad:
        check_batch({"samples": [good["samples"][0], {"region": "eu", "rtt_ms": True,
                                                      "samples": 0}]}, REGIONS, None)
    assert bad.value.problems == [
        "samples[1].client: missing, and the sender's address is unknown",
        "samples[1].rtt_ms: expected a number of milliseconds, got True",
        "samples[1].samples: 0 is not a whole number in 1..1000000",
    ]
    with pytest.raises(BadInput, match="expected"):
        check_batch([], REGIONS, None)
    with pytest.raises(BadInput, match="at most 10000"):
        check_batch({"samples": good["samples"] * 10_001}, REGIONS, None)


def test_csv_problems_name_their_lines() -> None:
    text = ("client,region,rtt_ms,samples\n"
            "81.2.69.0/24,eu,23.5,\n"
            "\n"
            "81.2.69.0/24,eu\n"
            "EU-GB,moon,5,2\n"
            "EU-GB,eu,nan,2\n")
    with pytest.raises(BadInput) as bad:
        check_csv(text, REGIONS, source="m.csv")
    assert bad.value.problems == [
        "m.csv:4: expected 3 or 4 columns (client,region,rtt_ms[,samples]), got 2",
        'm.csv:5: unknown region "moon"',
        "m.csv:6: nan is not in (0, 60000] ms",
    ]
    assert len(check_csv(text.split("\n\n")[0] + "\n", REGIONS)) == 1
    with pytest.raises(BadInput, match="line 1: expected the header"):
        check_csv("a,b,c\n", REGIONS)
    with pytest.raises(BadInput, match="line 7: unknown region"):
        check_csv("EU,moon,5\n", REGIONS, first_line=7)
