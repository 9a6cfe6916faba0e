"""Tariff books: reading TOML and JSON, the errors they give, bands in wall-clock time."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from api.kpi.tariffs import Band, BookError, Region, Tariff, TariffBook, load_book, parse_book
from api.settings import ApiSettings

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")

TOML = """
default_tariff = "site"
default_region = "de"

[tariffs.site]
currency = "EUR"
base_rate = 0.12

[[tariffs.site.bands]]
name = "winter-evening"
rate = 0.30
days = "weekdays"
start = "17:00"
end = "21:00"
months = [11, 12, 1, 2]

[[tariffs.site.bands]]
name = "night"
rate = 0.08
start = "22:00"
end = "06:00"

[tariffs.flat]
base_rate = 0.2

[regions.de]
hourly_kg_per_kwh = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4,
                     0.2, 0.2, 0.2, 0.2, 0.4, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3]
tz = "Europe/Berlin"

[regions.green]
kg_per_kwh = 0.05

[devices.dev-00001]
tariff = "flat"

[locations."Plant A"]
region = "green"
"""


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_toml_book_rates_by_season_weekday_and_wrapping_night(tmp_path: Path) -> None:
    path = tmp_path / "tariffs.toml"
    path.write_text(TOML)
    book = load_book(path)
    site = book.tariff(None)
    assert site.rate_at(local(2026, 1, 14, 17, 0)) == 0.30  # winter Wednesday evening
    assert site.rate_at(local(2026, 7, 15, 17, 0)) == 0.12  # summer: the season does not apply
    assert site.rate_at(local(2026, 1, 17, 17, 0)) == 0.12  # Saturday
    assert site.rate_at(local(2026, 1, 14, 16, 45)) == 0.12  # edge: before the band
    assert site.rate_at(local(2026, 1, 14, 21, 0)) == 0.12  # edge: end is exclusive
    assert site.rate_at(local(2026, 1, 14, 22, 0)) == 0.08  # night, before midnight
    assert site.rate_at(local(2026, 1, 15, 5, 45)) == 0.08  # night, after midnight
    assert site.rate_at(local(2026, 1, 15, 6, 0)) == 0.12
    assert book.region(None).intensity_at(local(2026, 1, 14, 12, 30)) == 0.2
    # The profile's hours are Berlin's, whatever zone the device is in.
    assert (
        book.region(None).intensity_at(datetime.fromisoformat("2026-01-14T15:30:00+00:00")) == 0.4
    )
    assert book.choice("dev-00001", "Plant A") == ("flat", "green")
    assert book.choice("dev-00002", "Plant A") == ("site", "green")
    assert book.choice("dev-00002", None) == ("site", "de")


def test_json_book_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps(TariffBook().model_dump(mode="json")))
    book = load_book(path)
    assert book.tariff(None).rate_at(local(2026, 3, 4, 17, 0)) == 0.20  # reference tariff


def test_weekday_band_wrapping_midnight_belongs_to_the_day_it_starts() -> None:
    band = Band(rate=1.0, days="weekdays", start="22:00", end="06:00")
    assert band.applies(local(2026, 1, 16, 23, 0))  # Friday night
    assert band.applies(local(2026, 1, 17, 1, 0))  # Saturday morning: Friday's night
    assert not band.applies(local(2026, 1, 17, 23, 0))  # Saturday night
    assert not band.applies(local(2026, 1, 19, 1, 0))  # Monday morning: Sunday's night


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default_tariff": "nope"}, "default_tariff 'nope' is not in tariffs"),
        (
            {
                "tariffs": {"t": {"base_rate": 0.1, "bands": [{"rate": 1, "start": "17:10"}]}},
                "default_tariff": "t",
            },
            "tariffs.t.bands.0: Value error, start: '17:10' is not on a quarter hour",
        ),
        (
            {"tariffs": {"t": {"base_rate": -1}}, "default_tariff": "t"},
            "tariffs.t.base_rate: Input should be greater than or equal to 0",
        ),
        ({"regions": {"grid": {"hourly_kg_per_kwh": [0.1] * 23}}}, "needs 24 values"),
        ({"regions": {"grid": {}}}, "give exactly one of kg_per_kwh and hourly_kg_per_kwh"),
        ({"devices": {"d": {"tariff": "missing"}}}, "devices.d.tariff: no tariff 'missing'"),
        ({"tarifs": {}}, "tarifs: Extra inputs are not permitted"),
        ({"regions": {"grid": {"kg_per_kwh": 1, "tz": "Mars/Base"}}}, "unknown time zone"),
    ],
)
def test_invalid_books_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(BookError, match=re.escape(message)):
        parse_book(data)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("default_tariff = ")
    with pytest.raises(BookError, match=re.escape("broken.toml: not valid toml")):
        load_book(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text('default_region = "x"\n')
    with pytest.raises(
        BookError, match=re.escape("bad.toml: (top level): Value error, default_region")
    ):
        load_book(bad)
    with pytest.raises(BookError, match="cannot read"):
        load_book(tmp_path / "absent.toml")


def test_reference_book_is_the_issue_s_two_rate_tariff_and_constant_carbon() -> None:
    book = TariffBook()
    assert book.tariff(None) == Tariff(
        base_rate=0.10,
        bands=(Band(name="peak", rate=0.20, days="weekdays", start="17:00", end="21:00"),),
    )
    assert book.region(None) == Region(kg_per_kwh=0.45)


def test_api_settings_refuse_an_invalid_book(tmp_path: Path) -> None:
    path = tmp_path / "tariffs.toml"
    path.write_text('default_tariff = "x"\n')
    with pytest.raises(ValidationError, match="default_tariff 'x' is not in tariffs"):
        ApiSettings(tariffs_file=path)
    path.write_text(TOML)
    assert ApiSettings(tariffs_file=path).tariffs_file == path
