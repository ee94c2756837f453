"""Stub of opentelemetry.baggage."""
from types import MappingProxyType

from . import context as _context

_KEY = "baggage"


def get_all(context=None):
    ctx = context if context is not None else _context.get_current()
    return dict(ctx.get(_KEY, {}))


def set_baggage(name, value, context=None):
    ctx = context if context is not None else _context.get_current()
    bag = dict(ctx.get(_KEY, {}))
    bag[name] = value
    new = dict(ctx)
    new[_KEY] = MappingProxyType(bag)
    return MappingProxyType(new)
