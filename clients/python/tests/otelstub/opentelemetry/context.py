"""Stub of opentelemetry.context: an immutable dict per context, kept in a ContextVar."""
import contextvars
from types import MappingProxyType

_CURRENT = contextvars.ContextVar("otel_stub_context", default=MappingProxyType({}))


def get_current():
    return _CURRENT.get()


def attach(ctx):
    return _CURRENT.set(ctx)


def detach(token):
    _CURRENT.reset(token)
