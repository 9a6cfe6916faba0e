"""CPU and memory per process, sampled once a second in a background thread (psutil).

A *target* is a name and a function returning the pids it stands for right now (a service may
be restarted, PostgreSQL is a postmaster with one backend per connection); each sample sums
the target's processes and their children, except for the targets in ``without_children``
(the bench script itself, whose children are the services measured on their own).
``probes`` are read in the same tick (a counter from a metrics endpoint, say), so their time
series line up with the usage.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import psutil

Pids = Callable[[], list[int]]
Probe = Callable[[], float | None]


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    """Wall clock (``time.time()``)."""
    cpu_percent: dict[str, float]
    """Per target, percent of one core since the previous sample (200 = two cores busy)."""
    rss_mib: dict[str, float]
    system_cpu_percent: float
    """The whole machine, percent of one core (so up to 100 x cores)."""
    probes: dict[str, float | None]


@dataclass
class UsageSampler:
    targets: Mapping[str, Pids]
    probes: Mapping[str, Probe] = field(default_factory=dict)
    without_children: frozenset[str] = frozenset()
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _known: dict[int, psutil.Process] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _processes(self, pids: list[int], *, children: bool) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                root = self._known.get(pid) or psutil.Process(pid)
                family = root.children(recursive=True) if children else []
                for proc in (root, *family):
                    found[proc.pid] = self._known.get(proc.pid, proc)
        return list(found.values())

    def sample(self) -> Sample:
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        seen: dict[int, psutil.Process] = {}
        for name, pids in self.targets.items():
            cpu[name], rss[name] = 0.0, 0.0
            for proc in self._processes(pids(), children=name not in self.without_children):
                with contextlib.suppress(psutil.Error):
                    # The first call of a process's cpu_percent() has nothing to compare with
                    # and says 0: a process is counted from its second sample on.
                    cpu[name] += proc.cpu_percent(None)
                    rss[name] += proc.memory_info().rss / 2**20
                    seen[proc.pid] = proc
        self._known = seen
        system = psutil.cpu_percent(None) * (psutil.cpu_count() or 1)
        values = {name: probe() for name, probe in self.probes.items()}
        return Sample(time.time(), cpu, rss, system, values)

    def _loop(self) -> None:
        psutil.cpu_percent(None)
        while not self._stop.wait(self.every_s):
            self.samples.append(self.sample())

    @contextlib.contextmanager
    def running(self) -> Iterator[UsageSampler]:
        thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def summary(self, since: float, until: float) -> dict[str, dict[str, float]]:
        """Per target over ``[since, until]``: mean and peak CPU percent, mean and peak RSS;
        plus ``all_measured`` (their sum) and ``machine`` (everything, others' work too)."""
        window = [s for s in self.samples if since <= s.at <= until]
        if not window:
            return {}
        out: dict[str, dict[str, float]] = {}
        for name in self.targets:
            cpus = [s.cpu_percent.get(name, 0.0) for s in window]
            rsss = [s.rss_mib.get(name, 0.0) for s in window]
            out[name] = {
                "cpu_percent_mean": round(sum(cpus) / len(cpus), 1),
                "cpu_percent_peak": round(max(cpus), 1),
                "rss_mib_mean": round(sum(rsss) / len(rsss), 1),
                "rss_mib_peak": round(max(rsss), 1),
            }
        totals = [sum(s.cpu_percent.values()) for s in window]
        machine = [s.system_cpu_percent for s in window]
        out["all_measured"] = {
            "cpu_percent_mean": round(sum(totals) / len(totals), 1),
            "rss_mib_mean": round(sum(sum(s.rss_mib.values()) for s in window) / len(window), 1),
        }
        out["machine"] = {
            "cpu_percent_mean": round(sum(machine) / len(machine), 1),
            "cpu_percent_capacity": 100.0 * (psutil.cpu_count() or 1),
            "others_cpu_percent_mean": round(
                max(0.0, (sum(machine) - sum(totals)) / len(window)), 1
            ),
        }
        return out
