"""``python -m llamux``: the command line."""

from .cli import main

raise SystemExit(main())
