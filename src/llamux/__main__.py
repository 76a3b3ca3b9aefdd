"""``python -m llamux``: the command line."""

from .cli._main import main

raise SystemExit(main())
