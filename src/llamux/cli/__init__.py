"""The ``llamux`` command line: status, query, chat, release, reset, check, probe, init, demo
and serve.

``main(argv)`` runs one command and returns its exit code; ``build_parser()`` is its parser.
"""

from ._main import build_parser, main
from ._output import exit_code

__all__ = ["build_parser", "exit_code", "main"]
