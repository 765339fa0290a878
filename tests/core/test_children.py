"""`children_of`: each zone's hosted zones below it, read from the names' text."""

from __future__ import annotations

import dns.name
import pytest

from geostream_dns.core.build import _parents, children_of


def parents_by_dnspython(origin: str) -> list[str]:
    parents, name = [], dns.name.from_text(origin)
    while len(name) > 1:
        name = name.parent()
        parents.append(name.to_text())
    return parents


@pytest.mark.parametrize("origin", ["example.com.", "a.b.example.", "com.", "Sub.Example.COM.",
                                    "_tcp.a-b.example.", "a\\.b.example.", "*.w.example.",
                                    "xn--bcher-kva.example.", "caf\\195\\169.example.", "."])
def test_the_parents_of_a_name_as_dnspython_sees_them(origin: str) -> None:
    assert _parents(origin) == parents_by_dnspython(origin)


def test_every_hosted_zone_below_each_zone() -> None:
    # "a\\.example.com." is one label "a.example" below com., not below example.com.
    found = children_of(["example.com.", "a.example.com.", "b.a.example.com.", "other.net.",
                         "a\\.example.com.", "com."])
    assert found == {"example.com.": {"a.example.com.", "b.a.example.com."},
                     "a.example.com.": {"b.a.example.com."}, "b.a.example.com.": set(),
                     "other.net.": set(), "a\\.example.com.": set(),
                     "com.": {"example.com.", "a.example.com.", "b.a.example.com.",
                              "a\\.example.com."}}
