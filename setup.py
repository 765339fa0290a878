"""The one compiled part: batched UDP I/O (geostream_dns/_udpbatch.c).

Everything else is in pyproject.toml. The extension is optional: where it
cannot be built (no compiler, not Linux) the install goes on and the UDP
transport uses the event loop's own datagram transport instead.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(Extension("geostream_dns._udpbatch", ["geostream_dns/_udpbatch.c"],
                                 optional=True, extra_compile_args=["-O2"]))

setup(ext_modules=ext_modules)
