"""The examples at the end of each command's ``--help``."""

from __future__ import annotations

from .._config.proxy_defaults import KEY_VARIABLE

ROOT = """\
exit codes: 0 ok, 1 config or usage error, 2 no endpoint available (quota),
3 provider error, 4 store error

examples:
  llamux init                         a starting table for the keys you have set
  llamux chat "Hello"                 the answer, streamed as it comes
  llamux status                       what each endpoint has used and has left
"""
"""The end of ``llamux --help``."""

EXAMPLES = {
    "status": """\
examples:
  llamux status                       every endpoint and pool, rule by rule
  llamux status --json | jq '.endpoints[] | {id, state}'
""",
    "query": """\
examples:
  llamux query "Summarise this page" --max-tokens 300
  llamux query --dry-run "hi"         which endpoint now; nothing reserved
  llamux release ID                   give back the reservation query printed
""",
    "chat": """\
examples:
  llamux chat "Why is the sky blue?"
  git diff | llamux chat --wait 60    the prompt from stdin; waits up to 60 s
""",
    "release": """\
examples:
  llamux release 5f0c2a9e...          the id is on query's "reservation" line
""",
    "reset": """\
examples:
  llamux reset groq:llama-3.3-70b-versatile
  llamux reset --yes                  every endpoint, without asking
""",
    "check": """\
examples:
  llamux check
  llamux --config llamux.toml check
""",
    "probe": """\
examples:
  llamux probe                        every endpoint with a key (asks first)
  llamux probe groq:llama-3.3-70b-versatile --yes --json
""",
    "demo": """\
examples:
  llamux demo
  llamux demo --requests 80 --seconds 90
""",
    "serve": f"""\
examples:
  llamux serve                        http://127.0.0.1:8080/v1 and a dashboard
  {KEY_VARIABLE}=secret llamux serve --host 0.0.0.0 --port 8081
  llamux serve --workers 2            two processes sharing one quota store
""",
    "init": """\
examples:
  llamux init                         endpoints.md for the keys you have set
  llamux init --format toml -o llamux.toml --all
""",
    "batch": """\
examples:
  llamux batch requests.jsonl -o results.jsonl       OpenAI Batch lines; run again to resume
  llamux batch prompts.txt --text --system "Be brief." -o out.jsonl
""",
}
