"""Decode throughput of the reading contract against bare ``json.loads`` of the same bytes.

Every hop validates every reading (bridge and worker), so this is a per-message cost the whole
pipeline pays. Prints both rates and their ratio; writes bench/results/wire_decode.json.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from schema.wire import decode_reading
from simulator.devices import tick_time
from simulator.fleet import build_fleet

N = 100_000
RESULTS = Path(__file__).parent / "results"


def rate(fn: object, payloads: list[bytes]) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for payload in payloads:
        fn(payload)
    return len(payloads) / (time.perf_counter() - start)


def main() -> None:
    start = datetime(2026, 3, 29, tzinfo=UTC)
    fleet = build_fleet(100, seed=1)
    payloads = [
        fleet[i % 100].reading(i // 100, tick_time(start, i // 100, 60), 60).to_json()
        for i in range(N)
    ]
    rate(decode_reading, payloads[:2000])  # warm-up
    baseline = rate(json.loads, payloads)
    contract = rate(decode_reading, payloads)
    result = {
        "benchmark": "wire_decode",
        "messages": N,
        "json_loads_per_s": round(baseline),
        "decode_reading_per_s": round(contract),
        "ratio_to_json_loads": round(contract / baseline, 3),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?"},
        "at": datetime.now(UTC).isoformat(),
    }
    print(f"json.loads      {baseline:>12,.0f} msg/s")
    print(f"decode_reading  {contract:>12,.0f} msg/s  ({result['ratio_to_json_loads']:.2f}x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wire_decode.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
