"""Stop every process a ``dagster dev`` left behind, found by an environment marker.

``dagster dev`` does not stop everything it starts: its code server
(``dagster code-server start``) is not stopped with it and dies by heartbeat
about 45 s later, while the code server's own ``dagster api grpc`` child is
reparented to init and never exits. Signalling the process group is therefore
not enough. Every process below ``dagster dev`` inherits its environment, so
:func:`ceilgrid_assets.dev.server.start_dagster_dev` puts a fresh token in it
(``CEILGRID_DEV_TREE``) and this module finds the holders through
``/proc/<pid>/environ``, whichever parent they have by then.

Run as ``python -m ceilgrid_assets.dev.reaper TOKEN [--interrupt PID]...``, it is
a lifeline: it waits until its standard input reaches end of file (the starting
process closed it, or died, even by SIGKILL), stops every holder of the token,
then sends SIGINT to each ``--interrupt`` process (``make dev``'s Postgres: a fast
shutdown) if it still runs the command it ran when the lifeline started (no
signal to a reused pid) and waits for it to exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

MARKER = "CEILGRID_DEV_TREE"
GRACE_S = 10.0
INTERRUPT_WAIT_S = 60.0


def marked_processes(token: str) -> list[int]:
    """Processes (other than this one) whose environment holds ``CEILGRID_DEV_TREE=token``."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's process
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def terminate_marked(token: str, grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every holder of ``token``, SIGKILL those still there after ``grace_s``.

    Returns the pids that were signalled. A zombie keeps its environment readable
    until its parent reaps it, so a pid counts as gone once it is a zombie.
    """
    signalled: set[int] = set()
    deadline = time.monotonic() + grace_s
    while (left := _living(marked_processes(token))) and time.monotonic() < deadline:
        new = [pid for pid in left if pid not in signalled]  # one SIGTERM each: no cut cleanup
        _signal_all(new, signal.SIGTERM)
        signalled.update(new)
        time.sleep(0.2)
    _signal_all(_living(marked_processes(token)), signal.SIGKILL)
    return sorted(signalled)


def _living(pids: list[int]) -> list[int]:
    """``pids`` without zombies (dead, only waiting for their parent)."""
    living = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            living.append(pid)
    return living


def interrupt(pid: int, command: bytes | None, wait_s: float = INTERRUPT_WAIT_S) -> bool:
    """SIGINT ``pid`` if it still runs ``command``; True once it has exited."""
    if command is None or _cmdline(pid) != command:
        return True  # gone already, or the pid now belongs to another program
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + wait_s
    while _living([pid]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _living([pid])


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("token")
    parser.add_argument("--interrupt", type=int, action="append", default=[], metavar="PID")
    args = parser.parse_args(argv)
    # Ctrl-C in the terminal must not end the lifeline before it has done its work.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    commands = {pid: _cmdline(pid) for pid in args.interrupt}
    while sys.stdin.buffer.read(4096):
        pass
    left = {pid: _command(pid) for pid in marked_processes(args.token)}
    stopped = terminate_marked(args.token)
    if stopped:
        names = ", ".join(f"{pid} ({left.get(pid, '?')})" for pid in stopped)
        print(
            f"stopped {len(stopped)} processes dagster dev left running: {names}", file=sys.stderr
        )
    for pid, command in commands.items():
        if not interrupt(pid, command):
            print(f"process {pid} still running after SIGINT", file=sys.stderr)
    return 0


def _command(pid: int) -> str:
    """``dagster code-server``, ``dagster api`` ...: enough to tell the processes apart."""
    words = (_cmdline(pid) or b"?").split(b"\0")
    text = [word.decode(errors="replace") for word in words if word]
    if "-m" in text:
        text = text[text.index("-m") + 1 :]
    return " ".join(text[:3])


if __name__ == "__main__":
    sys.exit(main())
