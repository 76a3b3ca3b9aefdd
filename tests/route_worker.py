"""A worker process for the multi-process tests: one Router, several threads, JSON out.

Usage: python route_worker.py CONFIG THREADS REQUESTS [WAIT [START]]   (store: LLAMUX_STORE)

With WAIT, each request waits up to WAIT seconds for capacity instead of failing at once;
with START (epoch seconds), the threads begin then, all at once, the SDK imported before
(without START the process starts cold: the SDK is imported by the first call).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

from llamux import NoEndpointAvailable, Router, served_by


def main() -> None:
    config, threads, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    params = {"max_tokens": 8, "wait": float(sys.argv[4])} if len(sys.argv) > 4 else {}
    start = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    if start:
        import openai  # noqa: F401  (warm: the moment of the first call is the start)
    router = Router.from_config(config)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        time.sleep(max(0.0, start - time.time()))
        for _ in range(requests):
            try:
                response = router.completion(
                    [{"role": "user", "content": "hi"}], **(params or {"max_tokens": 8})
                )
                served = served_by(response)
                name = served.endpoint if served is not None else "?"
            except NoEndpointAvailable:
                name = "unavailable"
            with lock:
                counts[name] += 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    router.close()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
