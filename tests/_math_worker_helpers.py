"""Target functions for `treecot.tasks._timeout.TimeoutWorker` tests (imported inside the worker)."""

from __future__ import annotations

import os
import time


def echo(*args):
    return list(args)


def pid() -> int:
    return os.getpid()


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def boom(message: str):
    raise ValueError(message)


def chatty(value: int) -> int:
    print("noise on stdout that must not corrupt the protocol", flush=True)
    os.write(1, b"more noise written straight to fd 1\n")
    return value


def allocate(gib: int) -> int:
    block = bytearray(gib << 30)
    return len(block)


def not_json():
    return {1, 2, 3}


def slow_warmup() -> None:
    time.sleep(1.5)


def broken_warmup() -> None:
    raise RuntimeError("warm-up failed")
