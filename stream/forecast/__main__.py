"""``python -m stream.forecast`` / ``wattstream train``: flags (env defaults) -> settings -> train.

Reproduce the committed model (simulator export, training, scorecard, artifact) with::

    wattstream train

(``--seed 7`` and the other defaults; the model card's ``training.reproduce`` spells out every
flag). ``--quick`` is the small run the tests use.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from stream.forecast.errors import ForecastError
from stream.forecast.settings import TrainSettings


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainSettings, str]:
    parser = argparse.ArgumentParser(
        prog="wattstream train",
        description="Train the next-hour GRU forecaster on the simulator's history, score it "
        "against seasonal-naive and persistence on a held-out later period, and write "
        "artifacts/<model_id>/. Every flag defaults to its WATTSTREAM_TRAIN_* variable.",
    )
    data = parser.add_argument_group("history")
    data.add_argument("--seed", type=int, help="seeds the export, sampling and TensorFlow (7)")
    data.add_argument("--devices", type=int, help="devices in the simulated fleet (140)")
    data.add_argument("--days", type=float, help="days of history (182)")
    data.add_argument("--start", type=datetime.fromisoformat, help="ISO-8601 with offset")
    data.add_argument("--interval-s", type=int, help="simulated reading interval (900)")
    data.add_argument("--history", type=Path, help="use this export instead of the simulator")
    data.add_argument("--export-command", help="the export command (default: -m simulator history)")
    run = parser.add_argument_group("training")
    run.add_argument("--quick", action="store_true", default=None, help="small run, < 3 min")
    run.add_argument("--validation-days", type=float)
    run.add_argument("--test-days", type=float, help="held-out period at the end (21)")
    run.add_argument("--epochs", type=int)
    run.add_argument("--patience", type=int)
    run.add_argument("--batch-size", type=int)
    run.add_argument("--learning-rate", type=float)
    run.add_argument("--max-train-windows", type=int)
    run.add_argument("--gru-units", type=int)
    run.add_argument("--dense-units", type=int)
    out = parser.add_argument_group("artifacts and registry")
    out.add_argument("--artifacts-dir", type=Path, help="where artifacts go (artifacts)")
    out.add_argument(
        "--no-latest", dest="update_latest", action="store_false", default=None,
        help="do not point artifacts/latest at the new model",
    )  # fmt: skip
    out.add_argument(
        "--register",
        dest="register_url",
        metavar="DATABASE_URL",
        help="register + activate the model",
    )
    out.add_argument(
        "--skip-training", action="store_true", default=None,
        help="only register + activate an existing model (--model-id, default: latest)",
    )  # fmt: skip
    out.add_argument("--model-id")
    parser.add_argument("--log-level", default="INFO")
    args: dict[str, Any] = vars(parser.parse_args(argv))
    logging.basicConfig(
        level=args.pop("log_level"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = TrainSettings(**{k: v for k, v in args.items() if v is not None})
    shown = _redacted(sys.argv[1:] if argv is None else argv)
    return settings, shlex.join(["wattstream", "train", *shown])


def _redacted(argv: Sequence[str]) -> list[str]:
    """The command line for the model card, with database URLs (passwords) left out."""
    shown = list(argv)
    for index, arg in enumerate(shown):
        if arg.startswith("--register="):
            shown[index] = "--register=DATABASE_URL"
        elif arg == "--register" and index + 1 < len(shown):
            shown[index + 1] = "DATABASE_URL"
    return shown


def main(argv: Sequence[str] | None = None) -> None:
    settings, command = parse_args(argv)
    try:
        if settings.skip_training:
            from stream.forecast.train import register_existing  # noqa: PLC0415

            print(f"registered and activated {register_existing(settings)}")
            return
        from stream.forecast.train import train  # noqa: PLC0415

        result = train(settings, command)
    except ForecastError as exc:
        sys.exit(f"wattstream train: {exc}")
    overall = result.card["metrics"]["held_out"]["overall"]
    print(f"model {result.model_id} -> {result.directory}")
    for name in ("model", "seasonal_naive", "persistence"):
        print(f"  held-out RMSE {name:<15} {overall[name]['rmse']:.4f} kWh")
    print(f"  skill vs seasonal-naive  {overall['skill_vs_seasonal_naive']['model']:.1%}")


if __name__ == "__main__":
    main()
