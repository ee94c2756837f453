"""Stub of the W3C trace-context propagator: injects a fixed, valid traceparent."""

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class TraceContextTextMapPropagator:
    def inject(self, carrier, context=None, setter=None):
        carrier["traceparent"] = TRACEPARENT
