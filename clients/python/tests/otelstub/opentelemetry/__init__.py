"""A stub of the parts of opentelemetry-api the client uses (no package index is reachable here).

It mirrors the real API's signatures: opentelemetry.context.get_current/attach/detach,
opentelemetry.baggage.set_baggage/get_all, and
opentelemetry.trace.propagation.tracecontext.TraceContextTextMapPropagator.inject.
"""
