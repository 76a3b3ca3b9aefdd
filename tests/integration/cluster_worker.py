"""A worker process for the cluster tests: one Router, several threads asking each endpoint
in turn until the file STOP exists, JSON out (what each served, and every store error's
text).

Usage: python cluster_worker.py CONFIG THREADS STOP   (store: LLAMUX_STORE)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter

from llamux import NoEndpointAvailable, Router, StoreError, served_by


def main() -> None:
    config, threads, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    router = Router.from_config(config)
    models = [row.endpoint.id for row in router.status()]
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def work(offset: int) -> None:
        turn = offset
        while not os.path.exists(stop):
            model = models[turn % len(models)]
            turn += 1
            try:
                served = served_by(
                    router.completion(
                        [{"role": "user", "content": "hi"}], model=model, max_tokens=8
                    )
                )
                name = served.endpoint if served is not None else "?"
            except NoEndpointAvailable:
                name = "unavailable"
            except StoreError as exc:
                name = "store error"
                with lock:
                    errors[str(exc)] += 1
                time.sleep(0.02)
            with lock:
                counts[name] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    router.close()
    print(json.dumps({"counts": counts, "errors": errors}))


if __name__ == "__main__":
    main()
