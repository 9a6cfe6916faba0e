"""Start one command detached from its caller and print its pid.

``python -I detach.py --log FILE --cwd DIR [--user NAME] -- COMMAND...`` starts COMMAND in a
new session with stdin from /dev/null and stdout/stderr appended to FILE, optionally as the
system user NAME (which needs root), prints the pid and exits at once.

:mod:`wattstream.localcluster.process` runs this as a short-lived middleman. Because it exits, the
service is re-parented away from the caller: the caller holds no ``Popen`` object (whose
finaliser warns that the child "is still running") and never leaves a zombie to reap. It uses
the standard library only, so it runs in isolated mode (``-I``) from its path.
"""

from __future__ import annotations

import argparse
import os
import pwd
import subprocess
import sys
from typing import Any


def user_kwargs(name: str | None) -> dict[str, Any]:
    """``subprocess`` keyword arguments that run a command as the system user ``name`` (as root)."""
    if name is None:
        return {}
    entry = pwd.getpwnam(name)
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        # Without this the child would keep root's supplementary groups.
        "extra_groups": os.getgrouplist(name, entry.pw_gid),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="detach")
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--user")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    with open(args.log, "ab") as log:  # noqa: PTH123 - a plain file object for Popen
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=args.cwd,
            start_new_session=True,
            **user_kwargs(args.user),
        )
    sys.stdout.write(f"{child.pid}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
