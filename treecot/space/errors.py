"""The Space's user-facing errors and its time limit per request.

Every handler of the app is wrapped by `guarded`: a `SpaceError` (or any other failure) reaches the
visitor as a message (`gradio.Error`), the traceback goes to the server log only. `call_with_deadline`
bounds work that cannot be interrupted (loading a dataset, a model, a task's problems).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class SpaceError(ValueError):
    """A user-facing problem (bad input, a path outside the data roots, an exceeded bound): shown as a
    message in the app, never as a traceback."""


def user_message(error: BaseException) -> str:
    """The text shown for an exception: its message for expected errors, type + message otherwise."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error) or type(error).__name__
    if isinstance(error, (SpaceError, ValueError, KeyError, FileNotFoundError, TimeoutError)):
        return text
    return f"{type(error).__name__}: {text}"


def guarded(fn: Callable) -> Callable:
    """Wrap a handler (function or generator) so every exception reaches the user as a `gr.Error`."""
    import gradio as gr

    def convert(error: Exception) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        if not isinstance(error, SpaceError):
            logger.exception("treecot space: %s failed", fn.__name__)
        return gr.Error(user_message(error), print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - every failure becomes a message
                raise convert(e) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            raise convert(e) from None

    return wrapper


def time_limit_message(seconds: float, what: str) -> str:
    """The refusal of a request whose `what` ran past the limit of `seconds` per request."""
    return f"{what} exceeded the time limit of {seconds:g} s per request"


def call_with_deadline(fn: Callable[[], Any], deadline: float, timeout: float, what: str) -> Any:
    """Run `fn` in a worker thread and wait for it until `deadline`.

    The worker cannot be killed: past the deadline it finishes in the background and its result is dropped
    (the loaders it runs are bounded by their own I/O timeouts).

    Args:
        fn (`Callable[[], Any]`):
            The work, without arguments.
        deadline (`float`):
            A `time.monotonic()` time (`request_deadline`).
        timeout (`float`):
            The request's time limit in seconds, named in the refusal.
        what (`str`):
            What `fn` does ("loading the dataset"), named in the refusal.

    Returns:
        `Any`: what `fn` returned; what it raised is raised here, and `SpaceError` past the deadline.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SpaceError(time_limit_message(timeout, what))
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name=f"treecot-space-{what}", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        raise SpaceError(time_limit_message(timeout, what))
    if "error" in box:
        raise box["error"]
    return box["value"]


def request_deadline(timeout: float) -> float:
    """The `time.monotonic()` deadline of a request that starts now and may take `timeout` seconds."""
    return time.monotonic() + float(timeout)
