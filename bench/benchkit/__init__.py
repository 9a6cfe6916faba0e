"""What the benchmark scripts in ``bench/`` share: throw-away databases and ports
(:mod:`.cluster`), percentiles (:mod:`.stats`), the machine a run was measured on
(:mod:`.machine`), CPU and memory per process (:mod:`.usage`), the native ceilings of the
pipeline's parts (:mod:`.ceilings`), the pipeline chart (:mod:`.chart`), py-spy profiles
(:mod:`.pyspy`), and two load clients run as processes of their own: HTTP (:mod:`.loadgen`)
and live-feed websockets (:mod:`.wsclients`).

The scripts run as ``python bench/<name>.py``, which puts ``bench/`` on ``sys.path``, so they
import this package as ``benchkit``. ``make bench-all`` runs only ``bench/*.py``, not these.
"""
