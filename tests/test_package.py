"""The package surface: curated names, light import, no key in reprs."""

from __future__ import annotations

import json
import subprocess
import sys

import llamux


def test_all_is_sorted_and_complete() -> None:
    assert llamux.__all__ == sorted(llamux.__all__)
    for name in llamux.__all__:
        assert hasattr(llamux, name), name


def test_import_is_light() -> None:
    code = (
        "import sys, json, llamux; "
        "heavy = ('openai', 'rich', 'sqlite3', 'httpx2', 'tomllib', 'asyncio', 'email', 'socket'); "
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
