"""``schemathesis run --checks all`` in every phase (examples, coverage, fuzzing, stateful), once
per scope (no key, read, write, admin), against the API as its own process on a real socket,
configured as outside development, on the REST tests' fixture rows: exit status 0, i.e. every
check of every phase passes (no 5xx, no undocumented status, no schema-valid request refused, no
schema-violating one taken, ``Allow`` as documented, auth as documented, ...).

The repository's ``schemathesis.toml`` loads the hooks that keep generated requests within the
rules OpenAPI cannot state (:mod:`tests.fixtures.schemathesis_hooks`). The suite's run is
bounded (``EXAMPLES`` per operation and phase, a fixed seed); a full run sets
``WATTSTREAM_SCHEMATHESIS_EXAMPLES`` (docs/api.md has the figures of one). The in-process test
(``test_api_schemathesis.py``) checks what the CLI cannot: 401/403 exactly where the scope is
too narrow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..fixtures.api import start_api, wait_until_ready
from .test_api_rest import ADMIN_KEY, KEY, load_fixtures
from .test_api_schemathesis import READ_KEY

if TYPE_CHECKING:
    from schema.topics import KafkaTopics
    from tests.conftest import Services, Spawn

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("WATTSTREAM_SCHEMATHESIS_EXAMPLES", "8"))
RUN_BOUND_S = 300 + 10 * EXAMPLES
"""One scope's run at most (8 examples: about 40 s on a loaded machine)."""

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120 + 4 * RUN_BOUND_S)]
SEED = "20261130"
KEYS = {"none": None, "read": READ_KEY, "write": KEY, "admin": ADMIN_KEY}
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_schemathesis_checks_all_in_every_phase_with_every_scope(
    services: Services,
    database: str,
    kafka_topics: KafkaTopics,
    namespace: str,
    spawn: Spawn,
) -> None:
    await load_fixtures(database)
    api, port = start_api(
        spawn,
        services,
        database,
        namespace,
        require_read_key="true",  # as outside development
        read_api_keys=READ_KEY,
        api_keys=KEY,
        admin_api_keys=ADMIN_KEY,
        rate_limit_per_s="1000",  # a limit the run does not reach: 429 documented, never hit
        rate_limit_burst="1000000",
    )
    base = f"http://127.0.0.1:{port}"
    await wait_until_ready(api, base)
    failed = {}
    for scope, key in KEYS.items():
        command = [
            str(SCHEMATHESIS),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            SEED,
            "--no-color",
            *(["-H", f"X-API-Key: {key}"] if key else []),
        ]
        started = time.monotonic()
        run = subprocess.run(  # noqa: ASYNC221  # the test waits for it, nothing else runs
            command, cwd=REPO, capture_output=True, text=True, timeout=RUN_BOUND_S, check=False
        )
        took = time.monotonic() - started
        print(f"schemathesis, scope {scope}: exit {run.returncode} in {took:.0f} s")
        if run.returncode != 0:
            failed[scope] = run.stdout[-6000:] + run.stderr[-2000:]
    assert not failed, "\n\n".join(f"===== scope {s}\n{out}" for s, out in failed.items())
