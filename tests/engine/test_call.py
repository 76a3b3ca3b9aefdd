"""The request engine, driven as README shows: one Call per request, on the public names."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llamux import Call, served_by
from llamux._engine.served import attach
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, fake_router, used_of


def test_a_call_answers_fails_over_settles_and_records(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        fake.inject("a", 503)
        router = fake_router(fake, tmp_path, [("a", "10 | 1000 |"), ("b", "10 | 1000 |")])
        call = router.call(HI, {"max_tokens": 5})
        assert isinstance(call, Call)
        answer = call.answer()
        assert answer.got.endpoint.id == "b" and not answer.stream
        assert [(a.endpoint, a.outcome) for a in call.attempts] == [("a", "failed")]
        served = call.served(answer, answer.reply.body.usage)  # type: ignore[union-attr]
        assert served.endpoint == "b" and served.tokens == fake.stats("b").total_tokens
        assert [a.outcome for a in served.attempts] == ["failed", "served"]
        assert used_of(router, "b") == {"rpm": 1, "tpm": fake.stats("b").total_tokens}
        router.close()


def test_an_async_call_streams_and_settles_at_its_end(tmp_path: Path, keys: str) -> None:
    async def main() -> None:
        with FakeProvider([FakeEndpoint("a")]) as fake:
            router = fake_router(fake, tmp_path, [("a", "10 | 1000 |")])
            call = await router.acall(HI, {"max_tokens": 5, "stream": True})
            answer = await call.aanswer()
            assert answer.stream and answer.first is not None
            end = await call.offload(call.streaming, answer)
            chunks = [answer.first, *[c async for c in answer.reply.body]]  # type: ignore[union-attr]
            usage = next(c.usage for c in chunks if c.usage is not None)
            await call.offload(end, usage, None)
            assert used_of(router, "a") == {"rpm": 1, "tpm": usage.total_tokens}
            body = answer.reply.body
            attach(body, call.record(answer, usage.total_tokens))
            assert served_by(body).endpoint == "a"  # type: ignore[union-attr]
            await router.aclose()

    asyncio.run(main())
