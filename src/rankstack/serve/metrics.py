"""Prometheus metrics of one server: requests, latencies per endpoint, pipeline and stage, model batch sizes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Latency buckets in seconds, from a cached BM25 hit to a slow reranker.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Batch sizes in items (texts or pairs) and in requests.
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The metrics of one app, in their own registry (several apps can live in one process, as in tests)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rankstack_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.request_seconds = Histogram("rankstack_request_seconds", "Time to answer an HTTP request",
                                         ["route", "method"], buckets=SECONDS, registry=r)
        self.pipeline_seconds = Histogram("rankstack_pipeline_seconds", "Time to run a pipeline on one request's "
                                          "queries", ["pipeline"], buckets=SECONDS, registry=r)
        self.stage_seconds = Histogram("rankstack_stage_seconds", "Time spent in each stage of a pipeline",
                                       ["pipeline", "stage"], buckets=SECONDS, registry=r)
        self.batch_items = Histogram("rankstack_batch_items", "Items (texts, pairs) per model batch", ["model"],
                                     buckets=SIZES, registry=r)
        self.batch_requests = Histogram("rankstack_batch_requests", "Requests merged into one model batch",
                                        ["model"], buckets=SIZES, registry=r)
        self.search_batch = Histogram("rankstack_search_batch_queries", "Queries per batch-search request",
                                      buckets=SIZES, registry=r)
        self.writes = Counter("rankstack_documents_written", "Documents added, replaced or deleted", ["operation"],
                              registry=r)
        self.timeouts = Counter("rankstack_request_timeouts", "Requests stopped by the request-time limit",
                                registry=r)
        self.in_flight = Gauge("rankstack_requests_in_flight", "Requests being answered", registry=r)

    def batch_observer(self, model: str):
        """A callback for a MicroBatcher of `model`: records each batch's size in items and requests."""
        items, requests = self.batch_items.labels(model), self.batch_requests.labels(model)

        def observe(n_items: int, n_requests: int) -> None:
            items.observe(n_items)
            requests.observe(n_requests)

        return observe

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
