"""Prometheus and Grafana config: parses, and charts only metrics that `/metrics` exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hub import metrics
from tests.deploy.deploy_files import DASHBOARD, PROMETHEUS_CONFIG, PROMETHEUS_RULES, REPO

PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exposed_series_names() -> set[str]:
    """Every sample name the hub's registry can render, by metric type."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in metrics.REGISTRY.collect()
        for suffix in suffixes[family.type]
    }


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", expr)  # Grafana variables
    label_values = re.fullmatch(r"\s*label_values\(\s*([^,{)]+).*\)\s*", text)
    if label_values:  # Grafana's template query: label_values(metric, label)
        return {label_values.group(1).strip()}
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", text)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[: match.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # a number like 1e3 or a duration
        after = text[match.end() :].lstrip()
        if after.startswith("(") or match.group() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_the_extractor_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, account) (rate(hub_x_bucket{a="b", c=~"$v"}'
        "[$__rate_interval]))) / on (group) group_left (topic) max without (p) (other:ratio) "
        "> 1e3 and bool up offset 5m"
    )
    assert promql_metric_names(expr) == {"hub_x_bucket", "other:ratio", "up"}
    assert promql_metric_names("label_values(kafka_consumergroup_group_max_lag, group)") == {
        "kafka_consumergroup_group_max_lag"
    }


def test_dashboard_charts_only_metrics_the_hub_exposes() -> None:
    queries = _dashboard_queries(_dashboard())
    assert len(queries) >= 20
    used = set().union(*(promql_metric_names(q) for q in queries))
    assert used - exposed_series_names() == set()


def test_dashboard_shows_what_operators_need() -> None:
    used = set().union(*(promql_metric_names(q) for q in _dashboard_queries(_dashboard())))
    required = {
        "kafka_consumergroup_group_lag",  # lag per group and topic
        "kafka_consumergroup_group_max_lag",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_lag_seconds",
        "hub_consumergroup_status",
        "hub_messages_processed_total",  # throughput
        "hub_webhooks_received_total",
        "hub_reservations_total",  # reservations and rejections
        "hub_oversell_attempts_refused_total",
        "hub_stock_push_latency_seconds_bucket",
        "hub_dlq_messages",
        "hub_outbox_backlog",
    }
    assert required - used == set()


def test_dashboard_panels_are_well_formed_and_use_the_provisioned_datasource() -> None:
    dashboard = _dashboard()
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_provider_reads_the_directory_compose_mounts(compose: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/hub.yml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_alert_rules_use_only_exposed_metrics() -> None:
    rules = yaml.safe_load(PROMETHEUS_RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs
    used = set().union(*(promql_metric_names(e) for e in exprs))
    assert used - exposed_series_names() - PROMETHEUS_SERIES == set()


def test_prometheus_config_parses_and_scrapes_metrics_paths() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    hub_jobs = [job for name, job in jobs.items() if name.startswith("hub-")]
    assert len(hub_jobs) == 4
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in hub_jobs)


@pytest.mark.parametrize(
    ("check", "path"), [("config", PROMETHEUS_CONFIG), ("rules", PROMETHEUS_RULES)]
)
def test_promtool_accepts_the_prometheus_files(check: str, path: Any) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", check, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
