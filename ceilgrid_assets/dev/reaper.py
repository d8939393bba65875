"""Stop every process a ``dagster dev`` left behind, found by an environment marker.

``dagster dev`` does not stop everything it starts: its code server
(``dagster code-server start``) is not stopped with it and dies by heartbeat
about 45 s later, while the code server's own ``dagster api grpc`` child is
reparented to init and never exits. Signalling the process group is therefore
not enough. Every process below ``dagster dev`` inherits its environment, so
:func:`ceilgrid_assets.dev.server.start_dagster_dev` puts a fresh token in it
(``CEILGRID_DEV_TREE``) and this module finds the holders through
``/proc/<pid>/environ``, whichever parent they have by then.

Run as ``python -m ceilgrid_assets.dev.reaper TOKEN``, it is a lifeline: it
waits until its standard input reaches end of file (the starting process closed
it, or died, even by SIGKILL) and then stops every holder of the token.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

MARKER = "CEILGRID_DEV_TREE"
GRACE_S = 10.0


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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ceilgrid_assets.dev.reaper TOKEN", file=sys.stderr)
        return 2
    # Ctrl-C in the terminal must not end the lifeline before it has done its work.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    left = {pid: _command(pid) for pid in marked_processes(args[0])}
    stopped = terminate_marked(args[0])
    if stopped:
        names = ", ".join(f"{pid} ({left.get(pid, '?')})" for pid in stopped)
        print(
            f"stopped {len(stopped)} processes dagster dev left running: {names}", file=sys.stderr
        )
    return 0


def _command(pid: int) -> str:
    """``dagster code-server``, ``dagster api`` ...: enough to tell the processes apart."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = [word.decode(errors="replace") for word in words if word]
    if "-m" in text:
        text = text[text.index("-m") + 1 :]
    return " ".join(text[:3])


if __name__ == "__main__":
    sys.exit(main())
