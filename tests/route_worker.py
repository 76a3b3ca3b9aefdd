"""A worker process for the multi-process tests: one Router, several threads, JSON out.

Usage: python route_worker.py CONFIG THREADS REQUESTS [WAIT]   (store from LLAMUX_STORE)

With WAIT, each request waits up to WAIT seconds for capacity instead of failing at once.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter

from llamux import NoEndpointAvailable, Router, served_by


def main() -> None:
    config, threads, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    params = {"max_tokens": 8, "wait": float(sys.argv[4])} if len(sys.argv) > 4 else {}
    router = Router.from_config(config)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
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
