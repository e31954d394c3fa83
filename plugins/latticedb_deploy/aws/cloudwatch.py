"""ALB target-group metrics and CloudWatch alarms, as the metric gate and preflight read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment
from latticedb_deploy.judge import MetricWindow

NAMESPACE = "AWS/ApplicationELB"
# query id -> (metric name, fixed statistic or None for the caller's latency statistic)
_QUERIES = {
    "requests": ("RequestCount", "Sum"),
    "errors": ("HTTPCode_Target_5XX_Count", "Sum"),
    "latency": ("TargetResponseTime", None),
}
_P99_QUERY = "latency_p99"  # TargetResponseTime at the SLO's P99 statistic, when asked


def _arn_resource(arn: str, kind: str) -> str:
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith(f"{kind}/"):
        raise ValueError(f"not an ELBv2 {kind} ARN: {arn!r}")
    return parts[5]


def target_group_dimension(arn: str) -> str:
    """`targetgroup/<name>/<id>`: CloudWatch's TargetGroup dimension value."""
    return _arn_resource(arn, "targetgroup")


def load_balancer_dimension(arn: str) -> str:
    """`app/<name>/<id>`: CloudWatch's LoadBalancer dimension value."""
    return _arn_resource(arn, "loadbalancer").removeprefix("loadbalancer/")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsClient:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "cloudwatch")

    def target_group_window(
        self,
        *,
        target_group_arn: str,
        load_balancer_arn: str,
        start: datetime,
        end: datetime,
        statistic: str,
        period: int,
        p99_statistic: str | None = None,
    ) -> MetricWindow:
        """Requests, target 5xx and latency for one target group, in one get_metric_data call.

        `p99_statistic` (e.g. "p99"; None: not asked) adds a fourth query, `latency_p99`, for the SLO's P99.
        """
        start, end = _utc(start), _utc(end)
        # CloudWatch compares whole seconds and rejects StartTime == EndTime (ValidationError): a window
        # opened less than a second ago (post-deployment checks' first round) asks for one second.
        end = max(end, start + timedelta(seconds=1))
        # Sorted by name: CloudWatch does not care, moto compares dimension lists in order.
        dimensions = [
            {"Name": "LoadBalancer", "Value": load_balancer_dimension(load_balancer_arn)},
            {"Name": "TargetGroup", "Value": target_group_dimension(target_group_arn)},
        ]
        wanted = dict(_QUERIES)
        if p99_statistic:
            wanted[_P99_QUERY] = ("TargetResponseTime", p99_statistic)
        queries = [
            {
                "Id": qid,
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                    "Period": period,
                    "Stat": stat or statistic,
                },
            }
            for qid, (name, stat) in wanted.items()
        ]
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        values: dict[str, list[float]] = {qid: [] for qid in wanted}
        while True:
            resp = self.client.get_metric_data(**kwargs)
            for result in resp.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(result.get("Values", []))
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        latency, p99 = values["latency"], values.get(_P99_QUERY) or []
        return MetricWindow(
            start=_iso(start),
            end=_iso(end),
            requests=float(sum(values["requests"])),
            errors_5xx=float(sum(values["errors"])),
            latency_ms=max(latency) * 1000.0 if latency else None,
            p99_ms=max(p99) * 1000.0 if p99 else None,
        )

    def target_group_samples(
        self,
        *,
        target_group_arns: dict[str, str],
        load_balancer_arn: str,
        start: datetime,
        end: datetime,
        statistic: str,
        period: int,
    ) -> dict[str, dict[str, list[float]]]:
        """Per-period samples for the relative judge: {label: {"error_rate", "latency", "success_rate": [...]}}.

        One GetMetricData call (paged) for every target group in `target_group_arns` (label -> ARN, e.g.
        baseline and canary): RequestCount and HTTPCode_Target_5XX_Count (Sum) and TargetResponseTime at
        `statistic`, each per `period` seconds. A period with requests gives one error-rate and one
        success-rate sample (5xx / requests; no 5xx datapoint: 0); a period with a latency datapoint gives
        one latency sample (ms). Periods without requests give none: too few samples is the judge's NoData.
        """
        start, end = _utc(start), _utc(end)
        end = max(end, start + timedelta(seconds=1))
        lb = load_balancer_dimension(load_balancer_arn)
        queries, ids = [], {}
        for i, (label, arn) in enumerate(target_group_arns.items()):
            dimensions = [
                {"Name": "LoadBalancer", "Value": lb},
                {"Name": "TargetGroup", "Value": target_group_dimension(arn)},
            ]
            for qid, (name, stat) in _QUERIES.items():
                ids[f"{qid}_{i}"] = (label, qid)
                queries.append({
                    "Id": f"{qid}_{i}",
                    "MetricStat": {
                        "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                        "Period": period,
                        "Stat": stat or statistic,
                    },
                })
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end,
                                  "ScanBy": "TimestampAscending"}
        series: dict[tuple[str, str], dict[Any, float]] = {key: {} for key in ids.values()}
        while True:
            resp = self.client.get_metric_data(**kwargs)
            for result in resp.get("MetricDataResults", []):
                key = ids.get(result["Id"])
                if key is not None:
                    series[key].update(zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        out: dict[str, dict[str, list[float]]] = {}
        for label in target_group_arns:
            requests, errors, latency = (series[(label, q)] for q in ("requests", "errors", "latency"))
            rates = [min(max(errors.get(ts, 0.0), 0.0), req) / req for ts, req in sorted(requests.items()) if req > 0]
            out[label] = {
                "error_rate": rates,
                "success_rate": [1.0 - r for r in rates],
                "latency": [v * 1000.0 for _, v in sorted(latency.items())],
            }
        return out

    def alarms_in_alarm(self, prefix: str) -> list[str]:
        """Names of metric and composite alarms starting with `prefix` whose state is ALARM."""
        kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "StateValue": "ALARM"}
        if prefix:
            kwargs["AlarmNamePrefix"] = prefix
        names: set[str] = set()
        while True:
            resp = self.client.describe_alarms(**kwargs)
            for alarm in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", []):
                # Filter again here: moto ignores StateValue when a name prefix is given.
                if alarm["AlarmName"].startswith(prefix) and alarm.get("StateValue") == "ALARM":
                    names.add(alarm["AlarmName"])
            if not resp.get("NextToken"):
                return sorted(names)
            kwargs["NextToken"] = resp["NextToken"]
