"""``python -m stream.forecast`` / ``wattstream train``: flags (env defaults) -> settings -> train.

Reproduce the committed model (simulator export, training, scorecard, artifact) with::

    wattstream train

(``--seed 7`` and the other defaults; the model card's ``training.reproduce`` spells out every
flag). ``--quick`` is the small run the tests use.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from schema.commandline import parse_settings
from stream.forecast.errors import ForecastError
from stream.forecast.progress import json_lines, silent
from stream.forecast.settings import TrainSettings


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainSettings, str]:
    settings = parse_settings(
        TrainSettings,
        "wattstream train",
        "Train the next-hour GRU forecaster on the simulator's history, score it against "
        "seasonal-naive and persistence on a held-out later period, and write "
        "artifacts/<model_id>/.",
        argv,
    )
    shown = _redacted(sys.argv[1:] if argv is None else argv)
    return settings, shlex.join(["wattstream", "train", *shown])


def _redacted(argv: Sequence[str]) -> list[str]:
    """The command line for the model card, with database URLs (passwords) left out."""
    flags = ("--register", "--register-url")
    shown = list(argv)
    for index, arg in enumerate(shown):
        flag = arg.split("=", 1)[0]
        if flag in flags and "=" in arg:
            shown[index] = f"{flag}=DATABASE_URL"
        elif arg in flags and index + 1 < len(shown):
            shown[index + 1] = "DATABASE_URL"
    return shown


def main(argv: Sequence[str] | None = None) -> None:
    settings, command = parse_args(argv)
    report = json_lines() if settings.progress else silent
    try:
        if settings.skip_training:
            from stream.forecast.train import register_existing  # noqa: PLC0415

            print(f"registered and activated {register_existing(settings)}")
            return
        from stream.forecast.train import train  # noqa: PLC0415

        result = train(settings, command, report)
    except (ForecastError, ValueError) as exc:
        report({"event": "failed", "error": str(exc)})
        sys.exit(f"wattstream train: {exc}")
    card = result.card
    if settings.progress:
        report({
            "event": "done", "model_id": result.model_id, "directory": str(result.directory),
            "registered": settings.register_url is not None,
            "active": settings.register_url is not None and settings.activate,
            "held_out": card["metrics"]["held_out"]["overall"],
            "horizons_summary": card["metrics"].get("horizons_summary", {}),
        })  # fmt: skip
        return
    overall = card["metrics"]["held_out"]["overall"]
    print(f"model {result.model_id} -> {result.directory}")
    for name in ("model", "seasonal_naive", "persistence"):
        print(f"  held-out RMSE {name:<15} {overall[name]['rmse']:.4f} kWh")
    print(f"  skill vs seasonal-naive  {overall['skill_vs_seasonal_naive']['model']:.1%}")


if __name__ == "__main__":
    main()
