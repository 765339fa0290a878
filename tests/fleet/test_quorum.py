"""The fleet's rule for health, without sockets: sites' verdicts -> the down-set."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geostream_dns.core.health import HealthKey, fleet_down, quorum_needed

A: HealthKey = ("example.com.", "web", "192.0.2.10")
B: HealthKey = ("example.com.", "web", "192.0.2.11")


def test_a_majority_of_live_sites_by_default() -> None:
    live = ["eu", "us", "ap"]
    two_down = {"eu": {A: False}, "us": {A: False}, "ap": {A: True}}
    one_down = {"eu": {A: False}, "us": {A: True}, "ap": {A: True}}
    assert fleet_down(two_down, live, {A: None}) == {A}
    assert fleet_down(one_down, live, {A: None}) == frozenset()


def test_the_checks_quorum_beats_the_majority() -> None:
    live = ["eu", "us", "ap"]
    one_down = {"eu": {A: False}, "us": {A: True}, "ap": {A: True}}
    assert fleet_down(one_down, live, {A: 1}) == {A}
    two_down = {"eu": {A: False}, "us": {A: False}, "ap": {A: True}}
    assert fleet_down(two_down, live, {A: 3}) == frozenset()


def test_one_live_site_decides_alone_whatever_the_quorum() -> None:
    assert fleet_down({"eu": {A: False}}, ["eu"], {A: 3}) == {A}
    assert fleet_down({"eu": {A: False}, "us": {A: False}}, ["eu"], {A: 2}) == {A}


def test_dead_sites_and_missing_verdicts_do_not_vote() -> None:
    # "us" says down but is not live; "ap" is live but has no verdict for A yet.
    verdicts = {"eu": {A: False}, "us": {A: False, B: False}, "ap": {B: True}}
    assert fleet_down(verdicts, ["eu", "ap"], {A: None, B: None}) == frozenset()
    assert fleet_down(verdicts, ["eu", "ap"], {A: 1, B: 1}) == {A}


def test_quorum_needed() -> None:
    assert [quorum_needed(None, n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert quorum_needed(2, 1) == 1 and quorum_needed(2, 5) == 2


@given(st.dictionaries(st.sampled_from(["eu", "us", "ap", "sa", "af"]),
                       st.dictionaries(st.sampled_from([A, B]), st.booleans()), min_size=1),
       st.sampled_from([None, 1, 2, 3, 4, 5]))
def test_down_exactly_when_enough_live_sites_say_down(
        verdicts: dict[str, dict[HealthKey, bool]], quorum: int | None) -> None:
    live = sorted(verdicts)
    down = fleet_down(verdicts, live, {A: quorum, B: quorum})
    for key in (A, B):
        votes = sum(1 for site in live if verdicts[site].get(key) is False)
        assert (key in down) == (votes >= quorum_needed(quorum, len(live)))
        if votes == 0:
            assert key not in down  # never down without a site saying so
        if votes == len(live):
            assert key in down  # every live site says down: down
