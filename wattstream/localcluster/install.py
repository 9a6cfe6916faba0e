"""Installing the programs the local cluster runs, from Debian's packages.

Each service says which programs it needs and which package brings each; :func:`ensure_packages`
installs the missing ones in one ``apt-get install`` (updating the package lists only when that
fails). Package maintainer scripts are kept from starting the system's own Mosquitto or
PostgreSQL service: the local cluster runs its own processes and needs those ports free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from wattstream.localcluster.errors import InstallError

logger = logging.getLogger(__name__)

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_APT_TIMEOUT_S = 1800


def find_program(name: str) -> Path | None:
    """The executable ``name`` on PATH or in the sbin directories (mosquitto lives there)."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN])
    found = shutil.which(name, path=search)
    return Path(found) if found else None


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries (Debian keeps them in /usr/lib/postgresql/N/bin)."""

    def major(initdb: Path) -> int:
        version = initdb.parent.parent.name
        return int(version) if version.isdigit() else 0

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=major)
    if candidates:
        return candidates[-1].parent
    initdb = find_program("initdb")
    return initdb.parent if initdb else None


@contextlib.contextmanager
def _services_kept_down() -> Iterator[None]:
    """Deny service starts during the install (policy-rc.d exit 101), as Debian images do."""
    if _POLICY_RC_D.exists():
        yield
        return
    _POLICY_RC_D.write_text(
        "#!/bin/sh\n# written by wattstream's local cluster for one install\nexit 101\n"
    )
    _POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        _POLICY_RC_D.unlink(missing_ok=True)


def _apt_get(arguments: Sequence[str]) -> None:
    argv = ["apt-get", "-o", "DPkg::Lock::Timeout=600", *arguments]
    logger.info("running %s", " ".join(argv))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, env=env, timeout=_APT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{' '.join(argv)} failed: {exc}") from exc
    logger.debug("apt-get output:\n%s", done.stdout)
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise InstallError(
            f"{' '.join(argv)} failed (exit {done.returncode}):\n" + "\n".join(lines[-20:])
        )


def ensure_packages(packages: Sequence[str]) -> None:
    """Install the Debian ``packages`` (the missing ones, as decided by the caller)."""
    wanted = sorted(set(packages))
    if not wanted:
        return
    for name in wanted:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise InstallError(f"not a Debian package name: {name!r}")
    if os.geteuid() != 0:
        raise InstallError(
            "the local cluster needs these Debian packages, and only root can install them: "
            f"apt-get install -y --no-install-recommends {' '.join(wanted)}"
        )
    install = ["install", "-y", "--no-install-recommends", *wanted]
    with _services_kept_down():
        try:
            _apt_get(install)
        except InstallError as first:
            logger.info(
                "apt-get install failed, updating the package lists and retrying: %s", first
            )
            _apt_get(["update"])
            _apt_get(install)
    logger.info("installed %s", " ".join(wanted))
