"""py-spy profiles of a running process: record one (raw collapsed stacks) and name its top
functions.

A raw profile has one line per distinct stack, ``frame;frame;...;frame COUNT``, outermost frame
first, each frame ``function (file:line)``. A function's *self* share is the samples whose
innermost frame it is; its *total* share the samples it appears in at all (counted once per
sample, however deep the recursion). Line numbers are dropped, so a function is one entry.
Only the main thread's stacks count (the event loop, where a request's time goes): py-spy
cannot tell that a pool's idle worker threads wait, and would count them as busy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
MAIN_THREAD = "_run_module_as_main"
"""The outermost frame of a ``python -m`` program's main thread."""
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def executable() -> str | None:
    """py-spy next to this interpreter's tools, else on ``PATH``."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def record(
    pid: int, seconds: float | None, out: Path, *, rate: int = 100
) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` (None: until sent SIGINT, when it writes what it
    has) into ``out`` (raw format); wait on the result."""
    spy = executable()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    command = [spy, "record", "-p", str(pid), "-r", str(rate)]
    if seconds is not None:
        command += ["-d", str(round(seconds))]
    return subprocess.Popen(
        [*command, "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _function(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match['function']} ({file})"


def top_functions(path: Path, n: int = 15) -> dict[str, Any]:
    """The ``n`` functions with the most self time and the ``n`` with the most total time, each
    with its percent of all samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [_function(f) for f in match["stack"].split(";") if f]
        if not frames or not frames[0].startswith(MAIN_THREAD):
            continue
        samples += count
        own[frames[-1]] += count
        for function in set(frames):
            total[function] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "percent": round(100 * c / max(samples, 1), 1)}
            for f, c in counter.most_common(n)
        ]

    return {"samples": samples, "self": share(own), "total": share(total)}
