"""Span trees of exported traces, for the demo and the telemetry tests."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan


def span_tree(spans: Iterable[ReadableSpan], trace_id: int) -> list[tuple[int, ReadableSpan]]:
    """The spans of one trace in start order, each with its depth (0 for the trace's roots
    here: spans whose parent was not exported, such as the HR system's)."""
    members = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    ids = {s.context.span_id for s in members if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in members:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, ReadableSpan]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            ordered.append((depth, span))
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return ordered


def render(tree: list[tuple[int, ReadableSpan]]) -> list[str]:
    """One line per span: indented name, duration, status and attributes."""
    lines = []
    for depth, span in tree:
        took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        status = span.status.status_code.name
        attributes = " ".join(f"{k}={v!s}" for k, v in (span.attributes or {}).items())
        events = "".join(f" [{event.name}]" for event in span.events)
        lines.append(f"{'  ' * depth}{span.name}  {took:.1f} ms  {status}  {attributes}{events}")
    return lines
