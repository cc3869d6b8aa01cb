"""harness: a plugin-based model-zoo benchmark for brain encoding.

The core (this package) never imports a plugin; plugins reach it through the
``harness`` entry-point group and the hooks in :mod:`harness.hookspecs`.
"""

__version__ = "0.1.0"
