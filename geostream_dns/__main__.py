import sys

from geostream_dns.cli.main import main

sys.exit(main())
