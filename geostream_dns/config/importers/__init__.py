"""Other tools' zones -> GeoStream zone documents (``geostream-dns import``).

One module per source: ``bind`` (RFC 1035 master files), ``octodns``
(``YamlProvider`` zone files) and ``route53`` (``list-resource-record-sets``
JSON); ``draft`` holds what they share. Each gives an :class:`Imported`: the
zone in the zone file shape and a warning, with its source file and line,
for everything it could not carry over as it was. The caller validates the
document with the zone loader before writing it.
"""

from geostream_dns.config.importers.bind import import_bind
from geostream_dns.config.importers.draft import ConvertError, Imported, SourceWarning
from geostream_dns.config.importers.octodns import import_octodns
from geostream_dns.config.importers.route53 import import_route53

__all__ = ["ConvertError", "Imported", "SourceWarning", "import_bind", "import_octodns",
           "import_route53"]
