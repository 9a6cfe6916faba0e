"""Forecasts per second through the serving entry point, against ``model.predict`` per window.

The stream worker forecasts every device whose hour closes together in one call of
``Forecaster.forecast`` (feature encoding + one batched ``tf.function``). This measures that
call for batches of 1, 100, 1,000 and 10,000 windows (and the ``tf.function`` alone on encoded
batches), against the naive way: Keras ``model.predict`` once per window, on a sample. Uses
the committed model (``artifacts/latest``). Prints a table; writes
bench/results/forecast_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.forecast.artifacts import MODEL_FILE
from stream.forecast.features import encode_inputs

RESULTS = Path(__file__).parent / "results"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
BATCHES = (1, 100, 1_000, 10_000)


def windows(forecaster: Forecaster, count: int, seed: int = 1) -> list[ForecastInput]:
    """``count`` plausible windows: the card's probe histories, jittered, at many hours."""
    rng = np.random.default_rng(seed)
    probes = forecaster.card["probe"]
    start = datetime(2026, 6, 1, tzinfo=UTC)
    made = []
    for i in range(count):
        probe = probes[i % len(probes)]
        history = np.asarray(probe["history_kwh"]) * rng.lognormal(0, 0.05, 24)
        made.append(
            ForecastInput(
                device_id=f"bench-{i:05d}",
                kind=probe["kind"],
                tz=probe["tz"],
                next_hour_start=start + timedelta(hours=i % 168),
                history_kwh=history.tolist(),
            )
        )
    return made


def rate(call: Callable[[], object], per_call: int, min_seconds: float) -> float:
    """Forecasts per second of ``call`` (``per_call`` forecasts each), after one warm-up."""
    call()
    calls, started = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return calls * per_call / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts-dir", type=Path, default=ARTIFACTS)
    parser.add_argument("--per-window-sample", type=int, default=200)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()

    forecaster = load_latest(args.artifacts_dir)
    sample = windows(forecaster, max(BATCHES))
    results: dict[str, dict[str, float]] = {}
    for size in BATCHES:
        batch = sample[:size]
        encoded = encode_inputs(forecaster.spec, forecaster.scaler, batch)
        kinds = np.array([forecaster.spec.kind_index(w.kind) for w in batch])
        results[str(size)] = {
            "predict_per_s": rate(lambda b=batch: forecaster.forecast(b), size, args.min_seconds),
            "tf_function_only_per_s": rate(
                lambda e=encoded, k=kinds: forecaster.forecast_encoded(e, k), size, args.min_seconds
            ),
        }

    import keras  # noqa: PLC0415 - TensorFlow is loaded by now; only the baseline needs Keras

    model = keras.saving.load_model(
        args.artifacts_dir / forecaster.model_id / MODEL_FILE, compile=False
    )
    single = [
        encode_inputs(forecaster.spec, forecaster.scaler, [w])
        for w in sample[: args.per_window_sample]
    ]
    model.predict([single[0].sequence, single[0].static], verbose=0)  # warm-up
    started = time.perf_counter()
    for one in single:
        model.predict([one.sequence, one.static], verbose=0)
    per_window = len(single) / (time.perf_counter() - started)

    print(f"model {forecaster.model_id} ({forecaster.card['parameters']} parameters)")
    print(f"{'batch':>7} {'forecast()/s':>14} {'tf.function/s':>14} {'x per-window':>13}")
    for size, row in results.items():
        ratio = row["predict_per_s"] / per_window
        row["speedup_vs_model_predict_per_window"] = ratio
        print(
            f"{int(size):>7,} {row['predict_per_s']:>14,.0f}"
            f" {row['tf_function_only_per_s']:>14,.0f} {ratio:>12,.1f}x"
        )
    print(f"model.predict per window ({len(single)} windows): {per_window:,.0f} forecasts/s")
    result = {
        "benchmark": "forecast_throughput",
        "model_id": forecaster.model_id,
        "batches": {k: {m: round(v, 1) for m, v in row.items()} for k, row in results.items()},
        "baseline_model_predict_per_window_per_s": round(per_window, 1),
        "baseline_sample_windows": len(single),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?"},
        "at": datetime.now(UTC).isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
