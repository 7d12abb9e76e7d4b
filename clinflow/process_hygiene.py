"""Child processes that do not outlive their parent.

A process pool's workers block forever on their task queue when the process that owns the pool
is killed (each worker holds a copy of the queue's write end, so it never sees end-of-file):
they are re-parented to init and keep their memory. ``die_with_parent`` is the pool initializer
that prevents this on Linux::

    ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                        initializer=die_with_parent)
    # with an initializer of its own:
    ProcessPoolExecutor(..., initializer=die_with_parent, initargs=(warm_up,))
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

#: prctl(2) option: the signal this process gets when its parent thread terminates.
PR_SET_PDEATHSIG: Final = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux).

    Returns False where the platform has no such mechanism. Raises OSError when prctl fails.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    return True


def _parent_gone() -> bool:
    parent = multiprocessing.parent_process()
    if parent is not None:
        # The parent's sentinel reads as closed once the parent has exited, whatever the start
        # method (with forkserver the kernel-level parent is the server, not the pool owner).
        return not parent.is_alive()
    return os.getppid() == 1


def die_with_parent(then: Callable[..., object] | None = None, *args: object) -> None:
    """Process-pool initializer: this process is SIGKILLed when the process that started it dies.

    Sets the parent-death signal, then checks the parent is still alive: a parent that died
    between the spawn and this call would never deliver the signal, so the process kills
    itself at once. ``then`` (with ``args``) runs afterwards: the pool's own initializer.

    The kernel's "parent" is the *thread* that started the process: start pool processes from
    a thread that lives as long as the pool (the event loop's, or the pool's manager thread),
    not from a short-lived worker thread. Elsewhere than Linux only ``then`` runs.
    """
    if set_parent_death_signal(signal.SIGKILL) and _parent_gone():
        os.kill(os.getpid(), signal.SIGKILL)
    if then is not None:
        then(*args)
