# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""events.*: scalars, vectors, plots, debug images and console logs of tasks (and models)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from ..api import Call, endpoint
from ..errors import ApiError, validation
from ..util import now_iso, now_ms
from .common import as_bool, as_int, get_task, str_list

EVENT_TYPES = ("training_stats_scalar", "training_stats_vector", "training_debug_image", "plot", "log")
SINGLE_VALUE_ITER = -(2**31)
_REQUEST_ONLY_KEYS = ("model", "method", "allow_locked", "model_event")


def _hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - clearml-server's metric keys


def _iso_from_ms(ms: Any) -> str:
    return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC).isoformat(timespec="milliseconds")


def _encode_scroll(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_scroll(scroll_id: Any) -> dict[str, Any] | None:
    if not scroll_id:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(str(scroll_id).encode()))
    except (ValueError, TypeError):
        raise validation("invalid scroll_id") from None
    return state if isinstance(state, dict) else None


# -- add --------------------------------------------------------------------------------------------
def _parse_batch(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("requests"), list):
        items = body["requests"]
    elif isinstance(body, dict) and isinstance(body.get("__jsonlines__"), list):
        items = body["__jsonlines__"]
    elif isinstance(body, list):
        items = body
    else:
        items = [body]
    events = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("event"), dict):  # AddRequest wrapping
            event = dict(item["event"])
            if item.get("model_event") is not None:
                event.setdefault("model_event", item["model_event"])
            events.append(event)
        else:
            events.append(dict(item))
    return events


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _normalize_event(event: dict[str, Any], owner: str, worker: str, received: str) -> None:
    """Fill in what clearml-server fills in: ids, times, iteration, names, numeric scalar values."""
    event["task"] = owner
    for key in _REQUEST_ONLY_KEYS:  # fields of the add request, not of the event
        event.pop(key, None)
    timestamp = event.get("timestamp")
    event["timestamp"] = int(timestamp) if isinstance(timestamp, (int, float)) and timestamp else now_ms()
    iteration = event.get("iter")
    event["iter"] = int(iteration) if isinstance(iteration, (int, float)) else 0
    event["metric"] = str(event.get("metric") or "")
    event["variant"] = str(event.get("variant") or "")
    event.setdefault("worker", worker)
    event["@timestamp"] = received
    if event["type"] == "training_stats_scalar":
        value = _number(event.get("value"))
        if value is None:
            raise ValueError("Scalar event must have a numeric 'value'")
        event["value"] = value
    elif event["type"] == "plot" and isinstance(event.get("plot_str"), str):
        event["plot_len"] = len(event["plot_str"])


def add_events(call: Call, raw_events: list[dict[str, Any]], worker: str) -> dict[str, Any]:
    store = call.store
    rows = []
    errors: dict[str, int] = {}
    touched: dict[tuple[str, str], dict[str, Any]] = {}
    received = now_iso()
    for event in raw_events:
        try:
            if event.get("type") not in EVENT_TYPES:
                raise ValueError(f"Invalid event type {event.get('type')}")
            model_event = as_bool(event.pop("model_event", None))
            owner = event.get("model") if model_event and event.get("model") else event.get("task")
            if not owner:
                raise ValueError("Event must have a 'task' field")
            kind = "models" if model_event else "tasks"
            doc = touched.get((kind, owner)) or store.get(kind, owner)
            if doc is None:
                raise ValueError(f"Invalid {kind[:-1]} id {owner}")
            touched[(kind, owner)] = doc
            _normalize_event(event, owner, worker, received)
            if event["type"] == "training_stats_scalar":
                _update_last_metrics(doc, event)
            if event["type"] != "log" and event["iter"] != SINGLE_VALUE_ITER:
                doc["last_iteration"] = max(int(doc.get("last_iteration") or 0), event["iter"])
            row = (owner, event["type"], event["iter"], event["metric"], event["variant"], event["timestamp"])
            rows.append((*row, model_event, event))
        except (ValueError, TypeError) as exc:
            errors[str(exc)] = errors.get(str(exc), 0) + 1
    if rows:
        store.add_events(rows)
    for (kind, _owner), doc in touched.items():
        doc["last_update"] = received
        store.put(kind, doc)
    return {"added": len(rows), "errors": sum(errors.values()), "errors_info": errors}


def _update_last_metrics(doc: dict[str, Any], event: dict[str, Any]) -> None:
    if event["iter"] == SINGLE_VALUE_ITER:
        return
    last_metrics = doc.setdefault("last_metrics", {})
    variants = last_metrics.setdefault(_hash(event["metric"]), {})
    key = _hash(event["variant"])
    value = event["value"]
    entry = variants.get(key)
    if entry is None:
        entry = {
            "metric": event["metric"],
            "variant": event["variant"],
            "value": value,
            "min_value": value,
            "min_value_iteration": event["iter"],
            "max_value": value,
            "max_value_iteration": event["iter"],
        }
    else:
        entry["value"] = value
        if math.isfinite(value) and (entry.get("min_value") is None or value < entry["min_value"]):
            entry["min_value"] = value
            entry["min_value_iteration"] = event["iter"]
        if math.isfinite(value) and (entry.get("max_value") is None or value > entry["max_value"]):
            entry["max_value"] = value
            entry["max_value_iteration"] = event["iter"]
    variants[key] = entry


@endpoint("events.add_batch")
def add_batch(call: Call) -> dict[str, Any]:
    worker = call.headers.get("x-clearml-worker") or call.headers.get("x-trains-worker") or ""
    return add_events(call, _parse_batch(call.body), worker)


@endpoint("events.add")
def add(call: Call) -> dict[str, Any]:
    worker = call.headers.get("x-clearml-worker") or call.headers.get("x-trains-worker") or ""
    result = add_events(call, _parse_batch(call.body), worker)
    if result["errors"]:
        raise ApiError(400, 12, f"Validation error ({'; '.join(result['errors_info'])})")
    return {}


# -- read helpers -----------------------------------------------------------------------------------
def _owner_events(call: Call, owner: str, types: list[str] | None) -> list[dict[str, Any]]:
    model_events = as_bool(call.body.get("model_events"))
    kind = "models" if model_events else "tasks"
    if not call.store.exists(kind, owner):
        if model_events:
            raise ApiError(400, 201, f"Invalid model id: id={owner}")
        get_task(call, owner)
    return call.store.events(owner, types)


def _metric_filter(metrics: Any) -> Any:
    """``[{metric, variants}]`` → predicate over events (None = everything)."""
    if not metrics:
        return None
    wanted: dict[str, set[str] | None] = {}
    for item in metrics:
        if not isinstance(item, dict) or item.get("metric") is None:
            continue
        variants = item.get("variants")
        if item["metric"] in wanted and wanted[item["metric"]] is None:
            continue
        wanted[item["metric"]] = set(variants) if variants else None
    if not wanted:
        return None

    def check(event: dict[str, Any]) -> bool:
        if event.get("metric") not in wanted:
            return False
        variants = wanted[event["metric"]]
        return variants is None or event.get("variant") in variants

    return check


def _sort_key(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("timestamp") or 0, event.get("iter") or 0)


def _check_owner(call: Call, owner: str) -> None:
    if as_bool(call.body.get("model_events")):
        if not call.store.exists("models", owner):
            raise ApiError(400, 201, f"Invalid model id: id={owner}")
    else:
        get_task(call, owner)


def _metrics_spec(metrics: Any) -> dict[str, list[str] | None] | None:
    """``[{metric, variants}]`` → {metric: [variants] or None (all)}."""
    if not metrics:
        return None
    if not isinstance(metrics, list):
        raise validation("metrics must be a list of {metric, variants}")
    spec: dict[str, list[str] | None] = {}
    for item in metrics:
        if not isinstance(item, dict) or item.get("metric") is None:
            continue
        metric, variants = str(item["metric"]), item.get("variants")
        if metric in spec and spec[metric] is None:
            continue
        spec[metric] = None if not variants else sorted({*(spec.get(metric) or []), *map(str, variants)})
    return spec or None


@endpoint("events.get_task_events")
def get_task_events(call: Call) -> dict[str, Any]:
    task_id = call.require("task")
    _check_owner(call, task_id)
    event_type = call.body.get("event_type")
    types = [event_type] if event_type and event_type != "all" else None
    batch_size = as_int(call.body.get("batch_size"), "batch_size", 500) or 500
    state = _decode_scroll(call.body.get("scroll_id")) or {"offset": 0}
    offset = int(state.get("offset", 0))
    page, total = call.store.events_page(
        task_id,
        types,
        metrics=_metrics_spec(call.body.get("metrics")),
        descending=(call.body.get("order") or "asc") == "desc",
        offset=offset,
        limit=batch_size,
    )
    return {
        "events": page,
        "returned": len(page),
        "total": total,
        "scroll_id": _encode_scroll({"offset": offset + len(page)}),
    }


@endpoint("events.get_task_log")
def get_task_log(call: Call) -> dict[str, Any]:
    task_id = call.require("task")
    _check_owner(call, task_id)
    batch_size = as_int(call.body.get("batch_size"), "batch_size", 500) or 500
    navigate_earlier = as_bool(call.body.get("navigate_earlier"), True)
    from_ts = call.body.get("from_timestamp")
    try:
        bound = float(from_ts) if from_ts is not None else None
    except (TypeError, ValueError):
        raise validation("from_timestamp must be a number") from None
    # navigate_earlier: the latest events before from_timestamp; else the earliest after it
    page, total = call.store.events_page(
        task_id,
        ["log"],
        descending=navigate_earlier,
        limit=batch_size,
        before_ts=bound if navigate_earlier else None,
        after_ts=None if navigate_earlier else bound,
    )
    order = call.body.get("order") or ("desc" if navigate_earlier else "asc")
    if (order == "desc") != navigate_earlier:
        page.reverse()
    return {"events": page, "returned": len(page), "total": total}


@endpoint("events.download_task_log")
def download_task_log(call: Call) -> dict[str, Any]:
    events = sorted(_owner_events(call, call.require("task"), ["log"]), key=_sort_key)
    return {"lines": [e.get("msg", "") for e in events]}


def _group_by_iteration(events: list[dict[str, Any]], iters: int) -> list[dict[str, Any]]:
    """Keep events of the last ``iters`` iterations of each (metric, variant)."""
    per_series: dict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
    for event in events:
        per_series.setdefault((event.get("metric", ""), event.get("variant", "")), []).append(event)
    kept = []
    for series in per_series.values():
        iterations = sorted({e.get("iter", 0) for e in series}, reverse=True)[:iters]
        kept.extend(e for e in series if e.get("iter", 0) in iterations)
    return kept


@endpoint("events.get_task_plots")
def get_task_plots(call: Call) -> dict[str, Any]:
    events = _owner_events(call, call.require("task"), ["plot"])
    check = _metric_filter(call.body.get("metrics"))
    if check:
        events = [e for e in events if check(e)]
    iters = as_int(call.body.get("iters"), "iters", 1) or 1
    state = _decode_scroll(call.body.get("scroll_id"))
    if state and state.get("done"):
        return {"plots": [], "returned": 0, "total": 0, "scroll_id": call.body.get("scroll_id")}
    plots = _group_by_iteration(events, iters)
    plots.sort(key=lambda e: (-(e.get("iter") or 0), e.get("metric", ""), e.get("variant", "")))
    return {
        "plots": plots,
        "returned": len(plots),
        "total": len(plots),
        "scroll_id": _encode_scroll({"done": True}),
    }


def _iterations_response(call: Call, etype: str) -> dict[str, Any]:
    """events.debug_images / events.plots: per (task, metric), the latest ``iters`` iterations."""
    metrics = call.require("metrics")
    if not isinstance(metrics, list):
        raise validation("metrics must be a list")
    state = _decode_scroll(call.body.get("scroll_id"))
    done = bool(state and state.get("done"))
    iters = as_int(call.body.get("iters"), "iters", 10) or 10
    navigate_earlier = as_bool(call.body.get("navigate_earlier"), True)
    result = []
    for item in metrics:
        if not isinstance(item, dict) or not item.get("task"):
            raise validation("metrics items need a task")
        task_id = item["task"]
        events = _owner_events(call, task_id, [etype])
        metric = item.get("metric")
        variants = set(item.get("variants") or [])
        by_metric: dict[str, list[dict[str, Any]]] = OrderedDict()
        for event in events:
            if metric is not None and event.get("metric") != metric:
                continue
            if variants and event.get("variant") not in variants:
                continue
            by_metric.setdefault(event.get("metric", ""), []).append(event)
        if metric is not None and metric not in by_metric:
            by_metric[metric] = []
        for metric_name, metric_events in by_metric.items():
            iterations: list[dict[str, Any]] = []
            if not done:
                numbers = sorted({e.get("iter", 0) for e in metric_events}, reverse=navigate_earlier)[:iters]
                for number in numbers:
                    iterations.append(
                        {
                            "iter": number,
                            "events": sorted(
                                (e for e in metric_events if e.get("iter", 0) == number),
                                key=lambda e: (e.get("variant", ""), e.get("timestamp", 0)),
                            ),
                        }
                    )
            result.append({"task": task_id, "metric": metric_name, "iterations": iterations})
    return {"metrics": result, "scroll_id": _encode_scroll({"done": True})}


@endpoint("events.debug_images")
def debug_images(call: Call) -> dict[str, Any]:
    return _iterations_response(call, "training_debug_image")


@endpoint("events.plots")
def plots(call: Call) -> dict[str, Any]:
    return _iterations_response(call, "plot")


def _x_value(event: dict[str, Any], key: str) -> Any:
    if key == "timestamp":
        return event.get("timestamp", 0)
    if key == "iso_time":
        return _iso_from_ms(event.get("timestamp", 0))
    return event.get("iter", 0)


def _histogram(events: list[dict[str, Any]], key: str, samples: int | None) -> dict[str, Any]:
    series: dict[str, dict[str, OrderedDict]] = OrderedDict()
    for event in events:
        if event.get("iter") == SINGLE_VALUE_ITER:
            continue
        points = series.setdefault(event["metric"], OrderedDict()).setdefault(event["variant"], OrderedDict())
        x = _x_value(event, key)
        points.setdefault(x, []).append(event["value"])
    result: dict[str, Any] = {}
    for metric, variants in series.items():
        result[metric] = {}
        for variant, points in variants.items():
            xs = sorted(points)
            ys = [sum(points[x]) / len(points[x]) for x in xs]
            if samples and len(xs) > samples:
                step = len(xs) / float(samples)
                picks = sorted({int(i * step) for i in range(samples)})
                xs = [xs[i] for i in picks]
                ys = [ys[i] for i in picks]
            result[metric][variant] = {"name": variant, "x": xs, "y": ys}
    return result


def _scalar_key(call: Call) -> str:
    key = call.body.get("key") or "iter"
    if key not in ("iter", "timestamp", "iso_time"):
        raise validation("key must be one of iter, timestamp, iso_time")
    return key


@endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    events = _owner_events(call, call.require("task"), ["training_stats_scalar"])
    check = _metric_filter(call.body.get("metrics"))
    if check:
        events = [e for e in events if check(e)]
    samples = as_int(call.body.get("samples"), "samples", 6000)
    return _histogram(events, _scalar_key(call), samples)


@endpoint("events.multi_task_scalar_metrics_iter_histogram")
def multi_task_scalar_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    key = _scalar_key(call)
    samples = as_int(call.body.get("samples"), "samples", 6000)
    result: dict[str, Any] = {}
    for task_id in str_list(call.require("tasks"), "tasks"):
        task = get_task(call, task_id)
        histogram = _histogram(_owner_events(call, task_id, ["training_stats_scalar"]), key, samples)
        for metric, variants in histogram.items():
            for variant, data in variants.items():
                result.setdefault(metric, {}).setdefault(variant, {})[task_id] = dict(data, name=task["name"])
    return result


@endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(call: Call) -> dict[str, Any]:
    metric = call.require("metric")
    if not isinstance(metric, dict):
        raise validation("metric must be {metric, variants}")
    events = _owner_events(call, call.require("task"), ["training_stats_scalar"])
    check = _metric_filter([metric])
    events = sorted(
        (e for e in events if check is None or check(e)), key=lambda e: (e["iter"], e["timestamp"])
    )
    key = _scalar_key(call)
    batch_size = as_int(call.body.get("batch_size"), "batch_size", 10000) or 10000
    state = _decode_scroll(call.body.get("scroll_id")) or {"offset": 0}
    offset = int(state.get("offset", 0))
    page = events[offset : offset + batch_size]
    variants: dict[str, dict[str, list[Any]]] = OrderedDict()
    for event in page:
        data = variants.setdefault(event["variant"], {key: [], "y": []})
        data[key].append(_x_value(event, key))
        data["y"].append(event["value"])
    result: dict[str, Any] = {
        "variants": variants,
        "returned": len(page),
        "scroll_id": _encode_scroll({"offset": offset + len(page)}),
    }
    if as_bool(call.body.get("count_total")):
        result["total"] = len(events)
    return result


def _metric_names(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = OrderedDict()
    for event in events:
        variants = names.setdefault(event.get("metric", ""), [])
        if event.get("variant", "") not in variants:
            variants.append(event.get("variant", ""))
    return names


@endpoint("events.get_scalar_metrics_and_variants")
def get_scalar_metrics_and_variants(call: Call) -> dict[str, Any]:
    events = _owner_events(call, call.require("task"), ["training_stats_scalar"])
    return {"metrics": {m: {v: {"name": v} for v in vs} for m, vs in _metric_names(events).items()}}


@endpoint("events.get_vector_metrics_and_variants")
def get_vector_metrics_and_variants(call: Call) -> dict[str, Any]:
    events = _owner_events(call, call.require("task"), ["training_stats_vector"])
    return {"metrics": [{"metric": m, "variants": vs} for m, vs in _metric_names(events).items()]}


@endpoint("events.vector_metrics_iter_histogram")
def vector_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    metric, variant = call.require("metric"), call.require("variant")
    events = [
        e
        for e in _owner_events(call, call.require("task"), ["training_stats_vector"])
        if e.get("metric") == metric and e.get("variant") == variant
    ]
    return {"images": events}


@endpoint("events.get_task_metrics")
def get_task_metrics(call: Call) -> dict[str, Any]:
    event_type = call.body.get("event_type")
    types = [event_type] if event_type and event_type != "all" else None
    result = []
    for task_id in str_list(call.require("tasks"), "tasks"):
        names = _metric_names(_owner_events(call, task_id, types))
        result.append({"task": task_id, "metrics": list(names)})
    return {"metrics": result}


@endpoint("events.get_task_latest_scalar_values")
def get_task_latest_scalar_values(call: Call) -> dict[str, Any]:
    events = _owner_events(call, call.require("task"), ["training_stats_scalar"])
    series: dict[str, dict[str, list[float]]] = OrderedDict()
    for event in sorted(events, key=lambda e: (e["iter"], e["timestamp"])):
        if event["iter"] == SINGLE_VALUE_ITER:
            continue
        series.setdefault(event["metric"], OrderedDict()).setdefault(event["variant"], []).append(
            event["value"]
        )
    metrics = []
    for metric, variants in series.items():
        items = []
        for variant, values in variants.items():
            last = values[-100:]
            items.append({"name": variant, "last_value": values[-1], "last_100_value": sum(last) / len(last)})
        metrics.append({"name": metric, "variants": items})
    return {"metrics": metrics}


@endpoint("events.get_task_single_value_metrics")
def get_task_single_value_metrics(call: Call) -> dict[str, Any]:
    result = []
    for task_id in str_list(call.require("tasks"), "tasks"):
        values = [
            {"metric": e["metric"], "variant": e["variant"], "value": e["value"], "timestamp": e["timestamp"]}
            for e in _owner_events(call, task_id, ["training_stats_scalar"])
            if e.get("iter") == SINGLE_VALUE_ITER
        ]
        latest: dict[tuple[str, str], dict[str, Any]] = OrderedDict()
        for value in values:
            latest[(value["metric"], value["variant"])] = value
        result.append({"task": task_id, "values": list(latest.values())})
    return {"tasks": result}


@endpoint("events.delete_for_task")
def delete_for_task(call: Call) -> dict[str, Any]:
    task_id = call.require("task")
    get_task(call, task_id)
    deleted = call.store.delete_events(task_id)
    return {"deleted": bool(deleted)}


@endpoint("events.delete_for_model")
def delete_for_model(call: Call) -> dict[str, Any]:
    model_id = call.require("model")
    if not call.store.exists("models", model_id):
        raise ApiError(400, 201, f"Invalid model id: id={model_id}")
    return {"deleted": bool(call.store.delete_events(model_id))}


@endpoint("events.clear_task_log")
def clear_task_log(call: Call) -> dict[str, Any]:
    task_id = call.require("task")
    get_task(call, task_id)
    return {"deleted": call.store.delete_events(task_id, ["log"])}


@endpoint("events.clear_scroll")
def clear_scroll(call: Call) -> dict[str, Any]:
    return {}
