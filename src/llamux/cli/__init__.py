"""The ``llamux`` command line: status, query, chat, reset, check, demo and serve.

``main(argv)`` runs one command and returns its exit code; ``build_parser()`` is its parser.
"""

from ._main import build_parser, exit_code, main

__all__ = ["build_parser", "exit_code", "main"]
