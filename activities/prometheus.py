"""``PrometheusMetrics``: the :class:`~activities.analysis.MetricsSource` of real Prometheus servers.

Every metric query runs on the Prometheus of the cluster's own region (the fleet's
``Region.prometheus``: queries stay in-region), with its template filled by
:func:`policies.gates.render_query` (``{{version}}`` the release's version). A baseline metric is
run a second time for the stable version: at the same instant while both versions serve side by
side (a canary's steps, a blue-green preview), else over the same window just before ringmaster
first touched the cluster (``touched_at``: a rolling update, a bake after promotion), when only the
stable version served. That window is in the past and never fills in later, so a scrape gap just
before the touch would leave the baseline empty for good: the pre-touch value is the stable version's
latest one within ``PRE_TOUCH_LOOKBACK`` before the touch (a range query stepped by the interval).
``judge: mannWhitney`` metrics are sampled with range queries over the window instead,
and compared by :mod:`policies.statistics`.

Queries run on this source's own bounded thread pool (``threads``), never on the event loop's
small default executor, which the SDK and every other ``to_thread`` share: a slow Prometheus then
queues queries behind each other, never other work.

Failures are measurements, never exceptions: Prometheus answering an error (a bad PromQL is HTTP
400) becomes an error carrying Prometheus' own message, an unreachable Prometheus an error naming
its host, and an empty result no data. Credentials (request headers) come from the worker's
settings and never appear in a measurement or a log.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
import structlog
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from activities import telemetry
from activities.models import AnalyzeInput
from policies import gates, hosts, statistics
from policies.fleet import Fleet
from policies.gates import Measurement
from policies.plan import Metric

log = structlog.get_logger("ringmaster.prometheus")

SIDE_BY_SIDE = ("canary", "preview")
"""Stages where the new and the stable version serve at the same time (a live baseline)."""

PRE_TOUCH_LOOKBACK = timedelta(minutes=1)
PRE_TOUCH_LOOKBACK_CHECKS = 10
"""How far before the touch a pre-touch baseline looks for the stable version's latest value: a
minute, or ten checks at longer intervals. Enough to bridge a few failed scrapes; short enough that
the value still stands for the version as it served just before the release."""


class PromQL(Protocol):
    """The two calls of ``prometheus_api_client.PrometheusConnect`` this source makes."""

    def custom_query(self, query: str, params: dict[Any, Any]) -> Any:
        """An instant query: the ``result`` of Prometheus' answer; raises on failure."""
        ...

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str) -> Any:
        """A range query: the ``result`` matrix; raises on failure."""
        ...


class QueryError(Exception):
    """A query that produced no usable answer; the message becomes the measurement's error."""


def connect(url: hosts.Url, *, timeout: float, headers: Mapping[str, str] | None = None) -> PromQL:
    """A client of one Prometheus: one quick retry of a gateway error, then the analysis loop's own.

    The client is given the URL rebuilt from ``url``, the parsed object the telemetry rule judged,
    never the text the fleet was written with: it connects to the judged host and no other.
    """
    retry = Retry(total=1, connect=0, backoff_factor=0.1, status_forcelist=(502, 503, 504))
    target = url.connect_form().rstrip("/")
    if hosts.host_of(parse_url(target).host or "") != url.host.name:  # requests reads it with urllib3
        raise ValueError("the Prometheus URL does not name the host it was judged by")
    client: PromQL = PrometheusConnect(
        url=target, headers=dict(headers or {}), retry=retry, timeout=math.ceil(timeout)
    )
    return client


_STATUS = re.compile(r"HTTP Status Code (\d+) \((b(?:'.*'|\".*\"))\)\s*$", re.DOTALL)


def describe_failure(exc: Exception, host: str) -> str:
    """A short, credential-free account of a failed query: Prometheus' own message when it answered."""
    if isinstance(exc, PrometheusApiClientException):
        found = _STATUS.match(str(exc))
        if found is None:
            return f"Prometheus {host}: {exc}"
        status, raw = found.group(1), found.group(2)
        try:
            body = ast.literal_eval(raw).decode(errors="replace")
        except (ValueError, SyntaxError):
            body = raw
        try:
            answer = json.loads(body)
            message = f"{answer.get('errorType', 'error')}: {answer.get('error', body)}"
        except (ValueError, AttributeError):
            message = body.strip()[:300] or "no message"
        return f"Prometheus {host} answered HTTP {status}: {message}"
    if isinstance(exc, requests.Timeout):
        return f"Prometheus {host} unreachable: no answer in time"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        why = next(
            (w for w in ("Connection refused", "Name or service not known", "No route to host") if w in text),
            "connection failed",
        )
        return f"Prometheus {host} unreachable: {why.lower()}"
    if isinstance(exc, requests.RequestException):
        return f"Prometheus {host} unreachable: {type(exc).__name__}"
    return f"Prometheus {host}: {type(exc).__name__}: {exc}"


def _value(result: Any) -> float | None:
    """The single value of an instant query's result; None when empty; QueryError when ambiguous."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        raw = result[1]  # a scalar: [time, "value"]
    else:
        series = list(result or [])
        if not series:
            return None
        if len(series) > 1:
            labels = ", ".join(str(s.get("metric", {})) for s in series[:2])
            raise QueryError(
                f"the query returned {len(series)} series ({labels}...); a gate needs one value: "
                "aggregate it, with sum(...) or avg(...)"
            )
        raw = series[0]["value"][1]
    number = float(raw)
    return None if math.isnan(number) else number


def _samples(result: Any) -> list[float]:
    """Every finite value of a range query's single series; [] when empty."""
    series = list(result or [])
    if len(series) > 1:
        raise QueryError(
            f"the query returned {len(series)} series; a gate needs one: "
            "aggregate it, with sum(...) or avg(...)"
        )
    if not series:
        return []
    values = (float(v) for _, v in series[0].get("values", []))
    return [v for v in values if math.isfinite(v)]


def _latest(client: PromQL, query: str, until: datetime, interval: timedelta) -> float | None:
    """The latest finite value of ``query`` within the pre-touch lookback ending at ``until``."""
    step = max(interval, timedelta(seconds=1))
    lookback = max(PRE_TOUCH_LOOKBACK, PRE_TOUCH_LOOKBACK_CHECKS * interval)
    points = math.ceil(lookback / step)
    # Stepped back from ``until`` so that the last point is the touch itself.
    found = _samples(
        client.custom_query_range(query, until - points * step, until, f"{step.total_seconds():g}s")
    )
    return found[-1] if found else None


def _step(window: timedelta) -> str:
    """The range query step: about 30 samples per window, never finer than a second."""
    return f"{max(1.0, window.total_seconds() / 30):g}s"


class PrometheusMetrics:
    """Measures an analysis's metrics on the Prometheus of the cluster's region."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        connector: Callable[[hosts.Url], PromQL] | None = None,
        threads: int = 16,
    ) -> None:
        self._fleet = fleet
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="prometheus")
        self._connector = connector or (lambda url: connect(url, timeout=timeout, headers=headers))
        self._clients: dict[hosts.Url, PromQL] = {}
        self._lock = threading.Lock()

    def _client(self, url: hosts.Url) -> PromQL:
        with self._lock:
            if url not in self._clients:
                self._clients[url] = self._connector(url)
            return self._clients[url]

    def close(self) -> None:
        """Stop the query threads (after the worker stopped measuring)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        """One measurement per metric, all queried concurrently on this source's threads."""
        try:
            region = self._fleet.region(inp.cluster.region)
        except KeyError:
            error = f"region {inp.cluster.region} is not in the worker's fleet"
            return [Measurement(metric=m.name, error=error) for m in inp.analysis.metrics]
        url = region.prometheus_url
        loop = asyncio.get_running_loop()
        found = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, self._timed, url, inp, metric, at)
                for metric in inp.analysis.metrics
            )
        )
        return list(found)

    def _timed(self, url: hosts.Url, inp: AnalyzeInput, metric: Metric, at: datetime) -> Measurement:
        """:meth:`_measure`, its time recorded by region and result (:mod:`activities.telemetry`)."""
        began = time.monotonic()
        found = self._measure(url, inp, metric, at)
        result = "error" if found.error is not None else "nodata" if found.value is None else "ok"
        telemetry.prometheus_query(inp.cluster.region, result, timedelta(seconds=time.monotonic() - began))
        return found

    def _measure(self, url: hosts.Url, inp: AnalyzeInput, metric: Metric, at: datetime) -> Measurement:
        host = url.host.name
        try:
            client = self._client(url)
            if metric.baseline is not None and metric.baseline.judge == "mannWhitney":
                return self._compare(client, inp, metric, at)
            query = self._query(inp, metric, inp.release.version)
            value = _value(client.custom_query(query, {"time": _ts(at)}))
            if metric.baseline is None:
                return Measurement(metric=metric.name, value=value)
            if self._flag_sides(inp, metric):
                off = self._query(inp, metric, inp.release.version, feature_on=False)
                baseline = _value(client.custom_query(off, {"time": _ts(at)}))
                return Measurement(metric=metric.name, value=value, baseline=baseline)
            version, when, live = self._stable_view(inp, at)
            stable_query = self._query(inp, metric, version)
            if live:
                stable = _value(client.custom_query(stable_query, {"time": _ts(when)}))
            else:
                stable = _latest(client, stable_query, when, inp.analysis.interval)
            return Measurement(metric=metric.name, value=value, baseline=stable)
        except QueryError as exc:
            error = str(exc)
        except Exception as exc:  # any failure to query is a measurement error, never a crash
            error = describe_failure(exc, host)
        log.warning(
            "query failed",
            metric=metric.name,
            release=inp.release.name,
            ring=inp.release.ring,
            cluster=inp.cluster.name,
            error=error,
        )
        return Measurement(metric=metric.name, error=error)

    def _compare(self, client: PromQL, inp: AnalyzeInput, metric: Metric, at: datetime) -> Measurement:
        baseline = metric.baseline
        assert baseline is not None
        window = baseline.sample_window(inp.analysis.interval)
        step = _step(window)
        query = self._query(inp, metric, inp.release.version)
        new = _samples(client.custom_query_range(query, at - window, at, step))
        if self._flag_sides(inp, metric):
            version, when = inp.release.version, at
            stable_query = self._query(inp, metric, version, feature_on=False)
        else:
            version, when, _ = self._stable_view(inp, at)
            stable_query = self._query(inp, metric, version)
        stable = _samples(client.custom_query_range(stable_query, when - window, when, step))
        found = statistics.compare(new, stable, baseline)
        return Measurement(
            metric=metric.name, value=found.new_mean, baseline=found.stable_mean, p_value=found.p_value
        )

    @staticmethod
    def _stable_view(inp: AnalyzeInput, at: datetime) -> tuple[str, datetime, bool]:
        """Which version the baseline is measured on, at which instant its window ends, and whether
        that is now (both versions serving) rather than the pre-touch window."""
        stable = inp.stable_version
        if not stable:
            raise QueryError("no stable version is known for this cluster; a baseline needs one")
        if inp.stage in SIDE_BY_SIDE and stable != inp.release.version:
            return stable, at, True
        if inp.touched_at is None:
            raise QueryError("the cluster's first touch is not known; the pre-touch baseline needs it")
        return stable, inp.touched_at, False

    @staticmethod
    def _flag_sides(inp: AnalyzeInput, metric: Metric) -> bool:
        """In the ``flag`` stage a flag metric's baseline is the same version's flag-off traffic, now."""
        return inp.stage == "flag" and inp.feature is not None and gates.is_flag_metric(metric.query)

    @staticmethod
    def _query(inp: AnalyzeInput, metric: Metric, version: str, *, feature_on: bool = True) -> str:
        flag = inp.feature if inp.stage == "flag" else None
        try:
            return gates.render_query(
                metric.query,
                service=inp.release.service,
                namespace=inp.namespace,
                cluster=inp.cluster.name,
                region=inp.cluster.region,
                version=version,
                interval=inp.analysis.interval,
                feature=flag,
                feature_on=feature_on if flag is not None else None,
            )
        except ValueError as exc:
            raise QueryError(f"cannot fill the query template: {exc}") from None


def _ts(at: datetime) -> str:
    return f"{at.timestamp():.3f}"
