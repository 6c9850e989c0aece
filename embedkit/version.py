"""embedkit's version, read from the installed package's metadata: pyproject.toml is the one place it is written."""
from importlib.metadata import PackageNotFoundError, version


def embedkit_version() -> str:
    try:
        return version("embedkit")
    except PackageNotFoundError:  # a source tree on sys.path that is not installed
        return "unknown"
