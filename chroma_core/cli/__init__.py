"""The command line: ``python -m chroma <command>``, installed as ``chroma-ml`` (see :mod:`chroma_core.cli.main`)."""

from chroma_core.cli.common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from chroma_core.cli.main import build_parser, main

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]
