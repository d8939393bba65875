"""Where the engine reports what it does, without knowing who listens.

Four engine steps are *observed*: ``building`` (``complete_building``), ``room``
(``complete_room``; ``building.deliver`` for a room laid out by a worker process
or copied from an identical room, so every room of a building is seen once),
``stage`` (``run_stage``) and ``candidate`` (``evaluate``).
An observer is a callable ``observer(event, step, args, kwargs)`` that must call
``step(*args, **kwargs)`` once and return its result; around that call it may
open spans, time, count or log. Observers are layered: the one subscribed last
runs outermost.

Tracing and metrics (:mod:`ceilgrid_assets.observability.telemetry`) subscribe
here, so the engine imports no OpenTelemetry and nothing above it. With no
observer subscribed, each observed call costs one tuple check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

Event = Literal["building", "room", "stage", "candidate"]
EVENTS: tuple[Event, ...] = ("building", "room", "stage", "candidate")
F = TypeVar("F", bound=Callable[..., Any])


class Observer(Protocol):
    def __call__(
        self, event: Event, step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


_observers: tuple[Observer, ...] = ()


def subscribe(observer: Observer) -> None:
    """Add an observer (again subscribing the same one changes nothing)."""
    global _observers
    if observer not in _observers:
        _observers = (*_observers, observer)


def unsubscribe(observer: Observer) -> None:
    global _observers
    _observers = tuple(known for known in _observers if known != observer)


def observers() -> tuple[Observer, ...]:
    return _observers


def observed(event: Event) -> Callable[[F], F]:
    """Let subscribed observers wrap every call of the decorated engine step."""
    if event not in EVENTS:
        raise ValueError(f"unknown engine event {event!r}")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _observers:
                return function(*args, **kwargs)
            step: Callable[..., Any] = function
            for observer in _observers:
                step = _layer(observer, event, step)
            return step(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _layer(observer: Observer, event: Event, inner: Callable[..., Any]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        return observer(event, inner, args, kwargs)

    return step
