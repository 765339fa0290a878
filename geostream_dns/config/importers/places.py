"""Places Route 53 routing names: AWS regions (where latency and geoproximity
policies put their record sets) and the continent of each country (a geo rule
writes ``EU-DE`` where Route 53 writes ``CountryCode: DE``)."""

from __future__ import annotations

# Approximate coordinates (lat, lon) of each AWS region's metro area.
AWS_REGIONS: dict[str, tuple[float, float]] = {
    "us-east-1": (38.9, -77.4), "us-east-2": (40.0, -83.0), "us-west-1": (37.4, -121.9),
    "us-west-2": (45.8, -119.7), "af-south-1": (-33.9, 18.4), "ap-east-1": (22.3, 114.2),
    "ap-east-2": (25.0, 121.5), "ap-south-1": (19.1, 72.9), "ap-south-2": (17.4, 78.5),
    "ap-northeast-1": (35.7, 139.7), "ap-northeast-2": (37.6, 127.0),
    "ap-northeast-3": (34.7, 135.5), "ap-southeast-1": (1.35, 103.8),
    "ap-southeast-2": (-33.9, 151.2), "ap-southeast-3": (-6.2, 106.8),
    "ap-southeast-4": (-37.8, 145.0), "ap-southeast-5": (3.1, 101.7),
    "ap-southeast-7": (13.8, 100.5), "ca-central-1": (45.5, -73.6), "ca-west-1": (51.0, -114.1),
    "cn-north-1": (39.9, 116.4), "cn-northwest-1": (37.5, 105.2), "eu-central-1": (50.1, 8.7),
    "eu-central-2": (47.4, 8.5), "eu-west-1": (53.3, -6.3), "eu-west-2": (51.5, -0.1),
    "eu-west-3": (48.9, 2.4), "eu-north-1": (59.3, 18.1), "eu-south-1": (45.5, 9.2),
    "eu-south-2": (41.6, -0.9), "il-central-1": (32.1, 34.8), "me-south-1": (26.1, 50.6),
    "me-central-1": (25.2, 55.3), "mx-central-1": (20.6, -100.4), "sa-east-1": (-23.5, -46.6),
    "us-gov-east-1": (40.0, -83.0), "us-gov-west-1": (45.8, -119.7),
}

_CONTINENTS = {
    "AF": "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY "
          "MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
          "ZM ZW",
    "AN": "AQ BV GS HM TF",
    "AS": "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA "
          "LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
    "EU": "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT "
          "JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK",
    "NA": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
          "MX NI PA PM PR SV SX TC TT US VC VG VI",
    "OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}
CONTINENT_OF = {country: continent for continent, countries in _CONTINENTS.items()
                for country in countries.split()}


def aws_region(name: str) -> str:
    """The AWS region a Route 53 region or local zone group belongs to
    (``us-east-1-bos-1`` -> ``us-east-1``)."""
    parts = name.split("-")
    return "-".join(parts[:3]) if len(parts) > 3 else name
