"""``llamux batch``: OpenAI Batch lines in and out, resumable after a kill -9 or Ctrl-C,
invalid and duplicate lines, 400s written as errors, the progress view; the fake provider."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY, run_cli


def table(fake: FakeProvider, tmp_path: Path, rpm: str = "1000") -> Path:
    path = tmp_path / "endpoints.md"
    path.write_text(
        "| name | provider | model | base_url | rpm | serves |\n|---|---|---|---|---|---|\n"
        f"| a | fake | m-a | {fake.base_url('a')} | {rpm} | chat |\n"
        f"| e | fake | m-e | {fake.base_url('e')} | {rpm} | embeddings |\n"
    )
    return path


def chat_line(custom_id: str, text: str = "hi") -> str:
    body = {"messages": [{"role": "user", "content": text}]}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def written(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def fake(keys: str) -> Any:
    with FakeProvider(
        [FakeEndpoint("a"), FakeEndpoint("e", serves=frozenset({"embeddings"}))]
    ) as f:
        yield f


def batch(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    code, _, err = run_cli(
        capsys, "batch", "--config", str(config), "--store", "memory://", "--plain", *argv
    )
    return code, err


def test_chat_and_embeddings_lines_in_one_file(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    emb = {"custom_id": "e1", "method": "POST", "url": "/v1/embeddings", "body": {"input": "hello"}}
    src.write_text(
        chat_line("c1")
        + "\n"
        + json.dumps(emb)
        + "\n"
        + json.dumps({"custom_id": "c2", "body": {"messages": [{"role": "user", "content": "x"}]}})
        + "\n"
    )
    code, err = batch(capsys, table(fake, tmp_path), str(src), "-o", str(out))
    assert code == 0, err
    lines = {line["custom_id"]: line for line in written(out)}
    assert set(lines) == {"c1", "e1", "c2"}
    assert lines["c1"]["response"]["status_code"] == 200 and lines["c1"]["error"] is None
    assert lines["c1"]["llamux"]["endpoint"] == "a" and lines["e1"]["llamux"]["endpoint"] == "e"
    assert lines["e1"]["response"]["body"]["data"][0]["embedding"]
    assert "3/3 done" in err and "a: 2 served" in err


def test_a_rerun_skips_what_is_written_and_cuts_a_partial_last_line(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(chat_line(f"r{i}") + "\n" for i in range(6)))
    config = table(fake, tmp_path)
    assert batch(capsys, config, str(src), "-o", str(out))[0] == 0
    kept = out.read_text().splitlines(keepends=True)[:3]
    out.write_text("".join(kept) + '{"id": "batch_req_r5", "custom_id": "r5", "resp')
    code, err = batch(capsys, config, str(src), "-o", str(out))
    assert code == 0 and "cut a partial last line" in err
    ids = [line["custom_id"] for line in written(out)]
    assert sorted(ids) == [f"r{i}" for i in range(6)] and len(ids) == 6
    assert fake.stats("a").served == 6 + 3
    assert batch(capsys, config, str(src), "-o", str(out))[0] == 0  # all done: nothing sent
    assert fake.stats("a").served == 9


def test_duplicate_ids_are_an_error_before_anything_is_sent(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(chat_line("x") + "\n" + chat_line("y") + "\n" + chat_line("x") + "\n")
    code, err = batch(capsys, table(fake, tmp_path), str(src), "-o", str(tmp_path / "o.jsonl"))
    assert code == 1 and "duplicate custom_id" in err and "'x' on lines 1, 3" in err
    assert fake.stats("a").served == 0


def test_invalid_lines_each_name_their_line_and_skip_invalid_sends_the_rest(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        chat_line("ok") + "\n{not json\n"
        + json.dumps({"custom_id": "u", "url": "/v1/images", "body": {}}) + "\n"
        + json.dumps({"custom_id": "m", "body": {"model": "m-a"}}) + "\n"
    )  # fmt: skip
    config = table(fake, tmp_path)
    code, err = batch(capsys, config, str(src), "-o", str(out))
    assert code == 1 and "3 invalid input line(s)" in err
    assert f"{src}:2: not JSON" in err and f"{src}:3: unknown url" in err and f"{src}:4:" in err
    assert fake.stats("a").served == 0
    code, err = batch(capsys, config, str(src), "-o", str(out), "--skip-invalid")
    assert code == 0 and f"skipped {src}:2" in err
    assert [line["custom_id"] for line in written(out)] == ["ok"]


def test_a_400_is_written_as_an_error_and_not_retried(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(chat_line("bad") + "\n")
    fake.inject("a", 400)
    code, _ = batch(capsys, table(fake, tmp_path), str(src), "-o", str(out))
    assert code == 3
    (line,) = written(out)
    assert line["response"]["status_code"] == 400 and line["error"]["message"]
    assert fake.stats("a").failed == 1 and fake.stats("a").served == 0


def test_text_prompts_with_a_system_message(
    fake: FakeProvider, tmp_path: Path, capsys: Any
) -> None:
    src, out = tmp_path / "prompts.txt", tmp_path / "out.jsonl"
    src.write_text("first\n\nsecond\n")
    code, err = batch(
        capsys, table(fake, tmp_path), str(src), "-o", str(out), "--text", "--system", "Be brief."
    )
    assert code == 0, err
    assert sorted(line["custom_id"] for line in written(out)) == ["line-1", "line-3"]


def test_the_live_view_renders_in_a_terminal_capture(fake: FakeProvider, tmp_path: Path) -> None:
    import io

    from llamux.cli._batch_view import LiveView

    stream = io.StringIO()
    view = LiveView(stream)
    view.show(["1/2 done, 0 errors, 60.0/min, ETA 1 s", "  a: served 1, in flight 1"], force=True)
    view.close()
    assert "1/2 done" in stream.getvalue() and "in flight 1" in stream.getvalue()


def _spawn(config: Path, src: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FAKE_API_KEY": KEY}
    command = [
        sys.executable,
        "-m",
        "llamux",
        "batch",
        "--config",
        str(config),
        "--store",
        "memory://",
    ]
    command += ["--plain", str(src), "-o", str(out), "--concurrency", "4"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_lines(out: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{out} never reached {count} lines")


@pytest.mark.parametrize("how", ["kill", "sigint"])
def test_a_killed_or_interrupted_batch_resumes_with_no_item_lost_or_written_twice(
    how: str, tmp_path: Path, capsys: Any, keys: str
) -> None:
    with FakeProvider([FakeEndpoint("a", delay=0.02), FakeEndpoint("e")]) as fake:
        src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        src.write_text("".join(chat_line(f"k{i}") + "\n" for i in range(150)))
        config = table(fake, tmp_path)
        child = _spawn(config, src, out)
        _wait_lines(out, 10)
        child.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, err = child.communicate(timeout=30)
        if how == "sigint":
            assert child.returncode == 130 and "run the same command again to resume" in err
            assert out.read_text().endswith("\n")
        else:
            assert child.returncode == -signal.SIGKILL
        assert len(written_ids := Counter(_ids(out))) < 150
        assert max(written_ids.values()) == 1
        code, err = batch(capsys, config, str(src), "-o", str(out))
        assert code == 0, err
        ids = Counter(line["custom_id"] for line in written(out))
        assert set(ids) == {f"k{i}" for i in range(150)} and max(ids.values()) == 1


def _ids(out: Path) -> list[str]:
    found = []
    for line in out.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a partial last line after kill -9
            found.append(json.loads(line)["custom_id"])
    return found
