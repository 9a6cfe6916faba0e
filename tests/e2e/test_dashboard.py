"""The dashboard in a real headless Chromium, against the API running as its own process.

Debian's ``chromium`` is installed through the project's own installer when it is missing and
driven by Playwright (no browser download). The API reads fixture rows from a migrated
PostgreSQL and live events that the test produces to its namespaced Kafka topics. The
screenshot is saved as ``dashboard.png`` in the test's tmp directory.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import async_playwright

from schema.results import Alert
from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from tests.fixtures.api import start_api, wait_until_ready
from wattstream.localcluster.install import ensure_packages, find_program

from ..conftest import Services, Spawn

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DEVICES = {  # id -> (zone, health status, presence)
    "dev-a": ("Europe/Berlin", "green", "online"),
    "dev-b": ("Asia/Kolkata", "amber", "online"),
    "dev-c": ("America/New_York", "red", "offline"),
    "dev-d": ("Europe/Berlin", "green", "online"),
}
LINE = "dev-d"
"""An industrial line: it reports production (UNITS a quarter), so its KPIs have an SEC."""
UNITS = 10.0
Q = timedelta(minutes=15)
MINUTE = timedelta(minutes=1)
H = timedelta(hours=1)
WRITE_KEY = "dashboard-write-key-0123456789"


def chromium() -> str:
    """Debian's chromium, installed with the project's installer if this machine lacks it."""
    found = find_program("chromium")
    if found is None:
        ensure_packages(["chromium"])
        found = find_program("chromium")
    assert found is not None, "chromium is not installed and could not be installed"
    return str(found)


def energy_at(ts: datetime, index: int) -> float:
    """A daily shape, so the bars are not flat."""
    return round(0.15 + 0.1 * math.sin(2 * math.pi * (ts.hour + index) / 24), 4)


def kind(device_id: str) -> str:
    return "industrial_line" if device_id == LINE else "household_meter"


async def load_fixtures(url: str, now: datetime) -> None:
    hour = now.replace(minute=0, second=0, microsecond=0)
    first = hour - 26 * H
    conn = await asyncpg.connect(url)
    try:
        readings = []
        for index, (device_id, (tz, _, _)) in enumerate(DEVICES.items()):
            ts, seq = first, 0
            while ts < now:
                units = UNITS if device_id == LINE else None
                readings.append((device_id, ts, seq, tz, 900, energy_at(ts, index), 0.6, units))
                ts, seq = ts + Q, seq + 1
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw,"
            " production_units) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            readings,
        )
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, tz, location_name, nominal_kw, firmware,"
            " interval_s) VALUES ($1, $2, $3, $4, 4.0, '1.0.0', 900)",
            [
                (d, kind(d), tz, tz.split("/")[1].replace("_", " "))
                for d, (tz, _, _) in DEVICES.items()
            ],
        )
        await conn.executemany(
            "INSERT INTO device_status (device_id, status, changed_at, last_seen)"
            " VALUES ($1, $2, $3, $3)",
            [(d, presence, now) for d, (_, _, presence) in DEVICES.items()],
        )
        await conn.executemany(
            "INSERT INTO health (device_id, hour_start, status, completeness_24h, rmse_ratio)"
            " VALUES ($1, $2, $3, 0.99, 0.6)",
            [(d, hour - H, status) for d, (_, status, _) in DEVICES.items()],
        )
        # dev-a (Berlin: local hours are UTC hours): closed hours with the forecast made for
        # each, and the forecast of the hour now running (the "next hour" of the dashboard).
        hourly, forecasts = [], []
        for k in range(24, 0, -1):
            start = hour - k * H
            actual = sum(energy_at(start + i * Q, 0) for i in range(4))
            hourly.append(
                ("dev-a", start, start + H, "Europe/Berlin", start.date(), start.hour, actual)
            )
            forecasts.append(("dev-a", start, round(actual * 1.08, 4), start - H))
        forecasts.append(("dev-a", hour, 0.77, hour - H))
        await conn.executemany(
            "INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date, local_hour,"
            " energy_kwh, reading_count, expected_count, completeness)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 4, 4, 1.0)",
            hourly,
        )
        await conn.executemany(
            "INSERT INTO forecasts (device_id, hour_start, model_id, predicted_kwh,"
            " baseline_kwh, based_on_hour) VALUES ($1, $2, 'gbm-1', $3, 0.6, $4)",
            forecasts,
        )
        # Alerts: two still holding (one of them on dev-a, drawn over its chart), one resolved.
        await conn.executemany(
            "INSERT INTO alerts (device_id, hour_start, kind, severity, message, alert_id,"
            " last_hour_start, hours, resolved_hour, residual_kwh, sigma, z)"
            " VALUES ($1, $2, $3, $4, $5, $1 || '.' || $3, $6, $7, $8, $9, $10, $11)",
            [
                ("dev-a", hour - 3 * H, "level_shift", "critical", "two hours above forecast",
                 hour - 2 * H, 2, None, 0.4, 0.05, 8.0),
                ("dev-b", hour - 2 * H, "silent", "warning", "no readings for 1 h",
                 hour - 2 * H, 1, None, None, None, None),
                ("dev-c", hour - 9 * H, "stuck", "warning", "power stuck", hour - 9 * H, 1,
                 hour - 8 * H, None, None, None),
            ],
        )  # fmt: skip
        # The ground truth the alerts are scored against: dev-c's meter was stuck then.
        await conn.execute(
            'INSERT INTO anomaly_labels (label_id, device_id, anomaly, start, "end",'
            " first_seq, nominal_kw, source, command_id)"
            " VALUES ('c1:dev-c', 'dev-c', 'stuck', $1, $2, 0, 2.0, 'schedule', 'c1')",
            hour - 9 * H,
            hour - 8 * H - 30 * MINUTE,
        )
    finally:
        await conn.close()


async def produce_live(services: Services, topics: KafkaTopics, now: datetime) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap)
    await producer.start()
    try:
        reading = Reading(
            device_id="dev-a",
            seq=10_000,
            ts=now.astimezone(ZoneInfo("Europe/Berlin")),
            tz="Europe/Berlin",
            interval_s=900,
            energy=Energy(value=0.2),
            power=Power(value=0.8),
        )
        await producer.send_and_wait(topics.readings, reading.to_json(), key=b"dev-a")
        hour = now.replace(minute=0, second=0, microsecond=0) - H
        alert = Alert(
            alert_id=f"dev-c.residual.{int(hour.timestamp())}",
            device_id="dev-c",
            hour_start=hour,
            last_hour_start=hour,
            hours=1,
            severity="critical",
            residual_kwh=1.4,
            sigma=0.2,
            z=7.0,
            message="energy far above forecast",
            raised_at=now,
            updated_at=now,
            resolved_hour=None,
            resolved_at=None,
        )
        await producer.send_and_wait(topics.alerts, alert.model_dump_json().encode(), key=b"dev-c")
    finally:
        await producer.stop()


async def test_the_dashboard_draws_history_health_and_live_events(
    services: Services,
    database: str,
    kafka_topics: KafkaTopics,
    namespace: str,
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    executable = await asyncio.to_thread(chromium)
    now = datetime.now(UTC)
    await load_fixtures(database, now)
    api, port = start_api(spawn, services, database, namespace, api_keys=WRITE_KEY)
    base = f"http://127.0.0.1:{port}"
    await wait_until_ready(api, base)

    page_errors: list[str] = []
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 860},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            await page.goto(f"{base}/#api_key={WRITE_KEY}")  # a write key: it may acknowledge
            await page.wait_for_selector("#live-status.connected", timeout=20_000)

            # The health grid: one tile per device, coloured by its latest health.
            await page.wait_for_selector("#health-grid .tile[data-device='dev-c']")
            tiles = await page.eval_on_selector_all(
                "#health-grid .tile",
                "ts => ts.map(t => [t.dataset.device, t.dataset.status, t.dataset.presence])",
            )
            assert tiles == [
                ["dev-a", "green", "online"],
                ["dev-b", "amber", "online"],
                ["dev-c", "red", "offline"],
                ["dev-d", "green", "online"],
            ]
            colours = await page.eval_on_selector_all(
                "#health-grid .tile", "ts => ts.map(t => getComputedStyle(t).backgroundColor)"
            )
            assert len(set(colours)) == 3, colours

            # Pick Kolkata: its axis is in its own zone.
            await page.select_option("#device", "dev-b")
            await page.wait_for_function(
                "document.querySelector('#zone-label')?.textContent.includes('Asia/Kolkata')"
            )
            assert "UTC+5:30" in (await page.text_content("#zone-label") or "")

            # Pick Berlin by its tile: 24 hourly bars, the forecasts beside them, the next hour.
            await page.click("#health-grid .tile[data-device='dev-a']")
            await page.wait_for_function(
                "document.querySelector('#zone-label')?.textContent.includes('Europe/Berlin')"
                " && document.querySelectorAll('#chart rect.bar').length >= 24"
            )
            bars = await page.eval_on_selector_all("#chart rect.bar", "bs => bs.length")
            assert 24 <= bars <= 25
            heights = await page.eval_on_selector_all(
                "#chart rect.bar", "bs => bs.map(b => Number(b.getAttribute('height')))"
            )
            assert min(heights) > 0
            assert max(heights) > 1.5 * min(heights)  # the daily shape is visible
            assert (
                await page.eval_on_selector_all("#chart circle.forecast-point", "p => p.length")
                >= 20
            )
            assert await page.query_selector("#chart path.forecast") is not None
            assert await page.query_selector("#chart rect.next") is not None
            assert (await page.text_content("#next-hour-kwh")) == "0.77 kWh"
            ticks = await page.eval_on_selector_all(
                "#chart text.tick", "ts => ts.map(t => t.textContent)"
            )
            assert ticks
            assert all(t.endswith(":00") for t in ticks)

            # Live events over the websocket reach the ticker.
            await produce_live(services, kafka_topics, now)
            await page.wait_for_selector(
                "#ticker li[data-kind='alerts'][data-device='dev-c']", timeout=20_000
            )
            await page.wait_for_selector("#ticker li[data-kind='readings'][data-device='dev-a']")
            alert_text = await page.text_content("#ticker li[data-kind='alerts']")
            assert alert_text is not None
            assert "critical: off forecast, energy far above forecast" in alert_text

            # The alerts that still hold (not the resolved one), worst first by time; dev-a's
            # drawn over its chart.
            await page.wait_for_selector("#alert-list li.alert[data-alert='dev-b.silent']")
            listed = await page.eval_on_selector_all(
                "#alert-list li.alert", "ls => ls.map(l => [l.dataset.alert, l.dataset.state])"
            )
            assert sorted(listed) == [["dev-a.level_shift", "open"], ["dev-b.silent", "open"]]
            assert (await page.text_content("#alert-count")) == "2 open"
            assert await page.query_selector("#chart rect.alert-band.critical") is not None

            # Acknowledge one: a name is needed, then it shows who and why.
            ack = "#alert-list li[data-alert='dev-b.silent'] button.ack"
            await page.click(ack)
            assert "Enter your name" in (await page.text_content("#alert-status") or "")
            await page.fill("#ack-by", "Ana")
            await page.fill("#alert-list li[data-alert='dev-b.silent'] input.ack-note", "on site")
            await page.click(ack)
            await page.wait_for_selector(
                "#alert-list li[data-alert='dev-b.silent'][data-state='acknowledged']"
            )
            text = await page.text_content("#alert-list li[data-alert='dev-b.silent']") or ""
            assert "acknowledged by Ana: on site" in text
            assert (await page.text_content("#alert-count")) == "1 open"
            # Resolved by hand, with a note: it leaves the list of alerts that hold.
            await page.fill("#alert-list li[data-alert='dev-b.silent'] input.ack-note", "fixed")
            await page.click("#alert-list li[data-alert='dev-b.silent'] button.resolve")
            await page.wait_for_selector(
                "#alert-list li[data-alert='dev-b.silent']", state="detached"
            )
            assert "dev-b.silent resolved" in (await page.text_content("#alert-status") or "")

            # How good the alerts are: the stuck meter was injected and caught; the others
            # alerted on devices with no injected anomaly.
            stuck = "#quality-table tr[data-kind='stuck']"
            await page.wait_for_selector(stuck)
            cells = await page.eval_on_selector_all(
                f"{stuck} td", "cs => cs.map(c => c.textContent)"
            )
            assert cells == ["stuck meter", "1", "100% (1/1)", "100% (1/1)"]
            shift = await page.eval_on_selector_all(
                "#quality-table tr[data-kind='level_shift'] td", "cs => cs.map(c => c.textContent)"
            )
            assert shift == ["level shift", "1", "0% (0/1)", "\u2013 (0/0)"]

            # The KPI panel: the line's SEC (kWh per unit; energy_at is 0.05-0.25 kWh a quarter,
            # over 10 units), and a breakdown by kind where only the line's kind has one.
            await page.select_option("#device", LINE)
            await page.wait_for_function(
                "document.querySelector('#kpi-table tbody td')?.textContent === 'dev-d today'"
                " && document.querySelector('#kpi-table').classList.contains('has-sec')"
            )
            sec = await page.text_content("#kpi-table tbody tr:first-child td.sec") or ""
            assert sec.endswith(" kWh/unit"), sec
            assert 0.05 / UNITS <= float(sec.split()[0]) <= 0.25 / UNITS
            assert await page.is_visible("#kpi-table th.sec")
            by_kind = dict(
                await page.eval_on_selector_all(
                    "#kind-table tbody tr",
                    "rs => rs.map(r => [r.dataset.kind, r.querySelector('td.sec').textContent])",
                )
            )
            assert by_kind.keys() == {"household_meter", "industrial_line"}
            assert by_kind["household_meter"] == "\u2013"  # an en dash: no SEC
            assert by_kind["industrial_line"].endswith(" kWh/unit")

            await page.wait_for_timeout(1500)  # let the ticker's highlight fade
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            # Usable at phone width: one column, nothing wider than the screen.
            await page.set_viewport_size({"width": 390, "height": 844})
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0
            # The KPI rows are cards at this width: the line's SEC is on screen, not scrolled off.
            box = await page.locator("#kpi-table tbody tr:first-child td.sec").bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 390
            await page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
        finally:
            await context.close()
    assert page_errors == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(
            "SELECT acknowledged_by, note, resolved_by, resolution_note, resolved_hour"
            " FROM alerts WHERE device_id = 'dev-b'"
        )
    finally:
        await conn.close()
    assert dict(row) == {
        "acknowledged_by": "Ana",
        "note": "on site",
        "resolved_by": "Ana",
        "resolution_note": "fixed",
        "resolved_hour": row["resolved_hour"],
    }
    assert row["resolved_hour"] is not None
