"""scl-delay: predict >15 minute departure delays at Santiago de Chile airport (SCL)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scl-delay")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
