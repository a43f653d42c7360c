"""Prometheus metrics of `chowa serve` in the text exposition format (`GET /metrics`), without a client library.

Counters: requests by model, route and status; prompt and generated tokens; finished requests by reason. Gauges,
read at scrape time: waiting and running requests per model. Histograms: decoding batch size, time to first token,
inter-token latency and whole-request latency.

Run as:
    curl -s localhost:8000/metrics | grep chowa_
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{key}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
               for key, value in sorted(labels.items()))
    return "{" + ",".join(escaped) + "}"


class Metrics:
    """Thread-safe counters and histograms (the engine thread observes batch sizes, handlers the rest)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[tuple, list]] = defaultdict(dict)
        self._buckets: dict[str, tuple] = {}
        self._help: dict[str, str] = {}
        self._gauges: dict[str, tuple[str, Callable[[], dict[tuple, float]]]] = {}

    def count(self, name: str, help: str, amount: float = 1, **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, help)
            self._counters[name][tuple(sorted(labels.items()))] += amount

    def observe(self, name: str, help: str, value: float, buckets=LATENCY_BUCKETS, **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, help)
            self._buckets.setdefault(name, buckets)
            key = tuple(sorted(labels.items()))
            counts = self._histograms[name].setdefault(key, [[0] * len(buckets), 0, 0.0])
            index = bisect.bisect_left(buckets, value)
            if index < len(buckets):
                counts[0][index] += 1
            counts[1] += 1
            counts[2] += value

    def gauge(self, name: str, help: str, read: Callable[[], dict[tuple, float]]) -> None:
        """A gauge read when scraped: `read()` maps label tuples (("model", "sft"),) to values."""
        self._gauges[name] = (help, read)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines += [f"# HELP {name} {self._help[name]}", f"# TYPE {name} counter"]
                lines += [f"{name}{_labels(dict(key))} {value:g}" for key, value in sorted(series.items())]
            for name, series in sorted(self._histograms.items()):
                lines += [f"# HELP {name} {self._help[name]}", f"# TYPE {name} histogram"]
                for key, (counts, total, value_sum) in sorted(series.items()):
                    labels, running = dict(key), 0
                    for bound, count in zip(self._buckets[name], counts, strict=True):
                        running += count
                        lines.append(f"{name}_bucket{_labels(labels | {'le': f'{bound:g}'})} {running}")
                    lines += [f"{name}_bucket{_labels(labels | {'le': '+Inf'})} {total}",
                              f"{name}_sum{_labels(labels)} {value_sum:g}", f"{name}_count{_labels(labels)} {total}"]
        for name, (help, read) in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {help}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(dict(key))} {value:g}" for key, value in sorted(read().items())]
        return "\n".join(lines) + "\n"
