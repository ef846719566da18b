"""OpenTelemetry spans for tasks and actor calls: a chain of calls across processes is one trace.

Every task or call carries its trace (the id of the call that started the
chain) and its parent (the call that submitted it) from process to process,
and from host to host: the head records every node's; this sink turns each
finished one into a span with those ids and hands it to your span processor
or exporter. Each span says where it ran (``nexus.worker``, ``nexus.node``,
``host.name``). Needs ``opentelemetry-sdk``
(``pip install -e '.[tracing]'``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..core.errors import NexusError
from .hub import ObservationEvent, ObservationSink

__all__ = ["OpenTelemetrySink"]


def _sdk() -> Any:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk import trace as sdk_trace
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        raise NexusError(
            "OpenTelemetry spans need the opentelemetry-sdk package: pip install opentelemetry-sdk "
            "(or the project's 'tracing' extra)"
        ) from None
    return trace, sdk_trace, Resource


class OpenTelemetrySink(ObservationSink):
    """Spans for finished tasks and calls, to ``span_processor.on_end`` or ``exporter.export``."""

    def __init__(
        self,
        span_processor: Any = None,
        exporter: Any = None,
        service_name: str = "nexus",
        where: Callable[[str], tuple[str, str] | None] | None = None,
    ) -> None:
        """``where(worker)``: the node and host a worker runs on, if known (said in each span's attributes)."""
        if span_processor is None and exporter is None:
            raise ValueError("give a span_processor (such as BatchSpanProcessor(...)) or an exporter")
        trace, sdk_trace, resource = _sdk()
        self._trace = trace
        self._sdk = sdk_trace
        self.processor = span_processor
        self.exporter = exporter
        self.resource = resource.create({"service.name": service_name})
        self._epoch = time.time_ns() - time.monotonic_ns()  # the events' clock to wall-clock time
        self._salt = int.from_bytes(os.urandom(8), "big") | 1  # the high half of trace ids: this cluster's
        self._submitted: dict[int, dict[str, Any]] = {}
        self._where = where

    def trace_id(self, trace: int) -> int:
        return (self._salt << 64) | (trace & 0xFFFFFFFFFFFFFFFF)

    def on_events(self, events: list[ObservationEvent], missed: int) -> None:
        spans = []
        for event in events:
            if event.kind == "submitted":
                self._submitted[event.data["id"]] = event.data
            elif event.kind == "finished":
                sub = self._submitted.pop(event.data["id"], None)
                if sub is not None:
                    spans.append(self._span(sub, event.data))
        if len(self._submitted) > 100_000:
            self._submitted.clear()
        if not spans:
            return
        if self.processor is not None:
            for span in spans:
                self.processor.on_end(span)
        else:
            self.exporter.export(spans)

    def _span(self, sub: dict[str, Any], done: dict[str, Any]) -> Any:
        trace = self._trace
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        trace_id = self.trace_id(sub["trace"])
        context = trace.SpanContext(trace_id, sub["id"] & 0xFFFFFFFFFFFFFFFF, is_remote=False, trace_flags=flags)
        parent = (
            trace.SpanContext(trace_id, sub["parent"] & 0xFFFFFFFFFFFFFFFF, is_remote=True, trace_flags=flags)
            if sub["parent"]
            else None
        )
        status = trace.Status(trace.StatusCode.OK if done["ok"] else trace.StatusCode.ERROR)
        attributes = {"nexus.kind": sub["what"], "nexus.worker": done["worker"], "nexus.pid": done["pid"], "nexus.submitted_by": sub["by"]}
        found = self._where(done["worker"]) if self._where is not None else None
        if found is not None:
            attributes["nexus.node"], attributes["host.name"] = found
        return self._sdk.ReadableSpan(
            name=sub["name"],
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=trace.SpanKind.INTERNAL,
            status=status,
            start_time=self._epoch + done["start"],
            end_time=self._epoch + done["end"],
        )
