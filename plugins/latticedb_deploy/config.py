"""Load and validate include/config/latticedb.yaml into typed, frozen models.

Every error names the file, the key path and the problem, so a typo in the config is a
one-line fix rather than a stack trace in the middle of a deployment.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import MISSING, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from latticedb_deploy.models import frozen_model

# libyaml's loader (the same results as yaml.SafeLoader, about 10x faster) when PyYAML has it.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"
CONFIG_ENV_VAR = "LATTICEDB_CONFIG"
# The deployment strategies (latticedb_deploy.strategies); an environment allows some or all of them.
STRATEGY_NAMES = ("rolling", "canary", "blue_green")
PROGRESSIVE_ROUTE_ENV_VAR = "LATTICEDB_PROGRESSIVE_ROUTE"  # "local": progressive_delivery follows local_stages

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ENV_REF_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


class ConfigError(ValueError):
    """The configuration file is missing, malformed or names something invalid."""


class UnknownEnvironmentError(ConfigError):
    """A deployment named an environment that the configuration does not define."""


@frozen_model
class Thresholds:
    """The runbook's key metrics a deployment must stay within."""

    max_error_rate: float = 0.05
    max_p95_ms: float = 1000.0
    min_success_rate: float = 0.95

    def _validate(self, where: str) -> None:
        _check(0 <= self.max_error_rate <= 1, where, "max_error_rate", "must be between 0 and 1")
        _check(0 <= self.min_success_rate <= 1, where, "min_success_rate", "must be between 0 and 1")
        _check(self.max_p95_ms > 0, where, "max_p95_ms", "must be positive")


@frozen_model
class Slo:
    """Production's SLO during a deployment (stricter than the thresholds)."""

    max_error_rate: float = 0.01
    max_p95_ms: float = 500.0
    max_p99_ms: float = 1000.0
    min_availability: float = 0.999
    # Canary gates and blue/green bakes use the stricter of thresholds and SLO (false: thresholds only).
    enforce_in_gates: bool = True

    def _validate(self, where: str) -> None:
        _check(0 <= self.max_error_rate <= 1, where, "max_error_rate", "must be between 0 and 1")
        _check(0 <= self.min_availability <= 1, where, "min_availability", "must be between 0 and 1")
        _check(self.max_p95_ms > 0, where, "max_p95_ms", "must be positive")
        _check(self.max_p99_ms > 0, where, "max_p99_ms", "must be positive")


@frozen_model
class Metrics:
    """How the metric gate reads CloudWatch."""

    latency_statistic: str = "p95"
    p99_statistic: str = "p99"  # the SLO's P99 (moto serves no percentiles: local names another statistic)
    period_seconds: int = 60
    min_requests: int = 50
    poll_seconds: int = 30

    def _validate(self, where: str) -> None:
        for key in ("latency_statistic", "p99_statistic"):
            value = getattr(self, key)
            ok = value in {"Average", "Maximum", "Minimum"} or bool(re.fullmatch(r"p\d{1,2}(\.\d+)?", value))
            _check(ok, where, key, "must be a percentile like p95, or Average/Maximum/Minimum")
        _check(self.period_seconds > 0, where, "period_seconds", "must be positive")
        _check(self.min_requests >= 0, where, "min_requests", "must be zero or more")
        _check(self.poll_seconds > 0, where, "poll_seconds", "must be positive")


# The canary-versus-baseline judge (latticedb_deploy.relative_judge): what it may judge and the modes.
JUDGE_METRICS = ("error_rate", "latency", "success_rate")
JUDGE_MODES = ("absolute", "relative", "both")
# Where `judge.mode` is unset: `both` in these environments (either failing fails the gate), `absolute` elsewhere.
JUDGE_BOTH_BY_DEFAULT = ("local", "staging", "production")
# Periods a gate waits beyond judge.min_samples: the first, partial (clock-aligned), and CloudWatch's delay.
GATE_SAMPLE_MARGIN_PERIODS = 3


def interval_gate_limit_seconds(interval_seconds: float) -> float:
    """A gate's limit from its interval alone: the interval, then as long again (at least 30 s)."""
    return interval_seconds + max(interval_seconds, 30)


@frozen_model
class Judge:
    """How a canary gate judges: fixed thresholds (`absolute`), canary vs baseline (`relative`), or `both`.

    tolerance: the allowed relative change before a significant difference counts, one number for every
    metric or a mapping metric -> number (unset: the judge's per-metric defaults). period_seconds: the
    per-period sample length (unset: metrics.period_seconds); a gate window needs min_samples of them.
    """

    mode: str | None = None
    confidence: float = 0.98
    tolerance: Any = None
    metrics: tuple[str, ...] = JUDGE_METRICS
    weights: Any = None
    critical: tuple[str, ...] = ("error_rate",)
    pass_score: float = 95.0
    marginal_score: float = 75.0
    min_samples: int = 10
    period_seconds: int | None = None

    def _validate(self, where: str) -> None:
        _check(self.mode is None or self.mode in JUDGE_MODES, where, "mode",
               f"must be one of {', '.join(JUDGE_MODES)}, got {self.mode!r}")
        _check(0.5 <= self.confidence < 1, where, "confidence", f"must be at least 0.5 and below 1, got {self.confidence}")
        for key in ("metrics", "critical"):
            bad = [m for m in getattr(self, key) if m not in JUDGE_METRICS]
            _check(not bad, where, key, f"unknown metric(s) {', '.join(map(repr, bad))}; known: {', '.join(JUDGE_METRICS)}")
        _check(bool(self.metrics) and len(set(self.metrics)) == len(self.metrics), where, "metrics",
               "must be a non-empty list without repeats")
        for key in ("tolerance", "weights"):
            value = getattr(self, key)
            if value is None or (key == "tolerance" and _number(value)):
                _check(value is None or value >= 0, where, key, f"must not be negative, got {value!r}")
                continue
            _check(isinstance(value, dict), where, key,
                   "must be a mapping of metric to number" + (" (or one number)" if key == "tolerance" else "")
                   + f", got {value!r}")
            for metric, number in value.items():
                _check(metric in JUDGE_METRICS, f"{where}.{key}", str(metric), f"unknown metric; known: {', '.join(JUDGE_METRICS)}")
                _check(_number(number) and number >= 0, f"{where}.{key}", str(metric), f"must be a number >= 0, got {number!r}")
        _check(0 <= self.marginal_score <= self.pass_score <= 100, where, "marginal_score",
               f"need 0 <= marginal_score ({self.marginal_score:g}) <= pass_score ({self.pass_score:g}) <= 100")
        _check(self.min_samples >= 3, where, "min_samples", f"must be at least 3, got {self.min_samples}")
        _check(self.period_seconds is None or self.period_seconds in (1, 5, 10, 30) or
               (self.period_seconds > 0 and self.period_seconds % 60 == 0), where, "period_seconds",
               f"must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch periods), got {self.period_seconds}")

    def settings(self):
        """The pure judge's settings (latticedb_deploy.relative_judge.JudgeSettings)."""
        from latticedb_deploy.relative_judge import DEFAULT_TOLERANCE, JudgeSettings

        tol = self.tolerance
        tolerance = dict(DEFAULT_TOLERANCE) if tol is None else (
            {m: float(tol) for m in JUDGE_METRICS} if _number(tol) else {**DEFAULT_TOLERANCE, **tol})
        return JudgeSettings(
            confidence=self.confidence, tolerance=tolerance, metrics=self.metrics, weights=dict(self.weights or {}),
            critical=self.critical, pass_score=self.pass_score, marginal_score=self.marginal_score,
            min_samples=self.min_samples,
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@frozen_model
class Rollout:
    """How long to wait for an ECS rollout and how often to look."""

    timeout_seconds: int = 1800
    poll_seconds: int = 15

    def _validate(self, where: str) -> None:
        _check(self.timeout_seconds > 0, where, "timeout_seconds", "must be positive")
        _check(self.poll_seconds > 0, where, "poll_seconds", "must be positive")


@frozen_model
class Smoke:
    """Smoke-test HTTP behaviour."""

    timeout_seconds: float = 5.0
    retries: int = 3
    retry_delay_seconds: float = 2.0

    def _validate(self, where: str) -> None:
        _check(self.timeout_seconds > 0, where, "timeout_seconds", f"must be positive, got {self.timeout_seconds:g}")
        _check(self.retries >= 0, where, "retries", f"must be zero or more, got {self.retries}")
        _check(self.retry_delay_seconds >= 0, where, "retry_delay_seconds",
               f"must be zero or more, got {self.retry_delay_seconds:g}")


@frozen_model
class Canary:
    """Default canary plan: runbook's `-c 10 -s 10 -t 300`, or an explicit list of steps."""

    canary_percent: int = 10
    step_percent: int = 10
    interval_seconds: int = 300
    traffic_steps: tuple[int, ...] | None = None

    def _validate(self, where: str) -> None:
        """The default plan must be one a run could take (latticedb_deploy.plans.build_plan's rules)."""
        from latticedb_deploy.plans import PlanError, build_plan

        try:
            build_plan(canary_percent=self.canary_percent, step_percent=self.step_percent,
                       interval_seconds=self.interval_seconds, traffic_steps=self.traffic_steps)
        except PlanError as exc:
            key = "traffic_steps" if self.traffic_steps is not None else (
                "interval_seconds" if "interval_seconds" in str(exc) else
                "step_percent" if "step_percent" in str(exc) else "canary_percent")
            raise ConfigError(f"{where}.{key}: {exc}") from None


@frozen_model
class Notifications:
    """Slack: a webhook connection by default; a bot-token connection plus channel as an option."""

    slack_conn_id: str = "slack_default"
    channel: str | None = None  # set together with a bot-token (`slack`) connection


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@frozen_model
class Window:
    """An allowed deployment window: these weekdays, between start and end (HH:MM, local to the timezone)."""

    days: tuple[str, ...]
    start: str = "00:00"
    end: str = "24:00"

    def _validate(self, where: str) -> None:
        bad = [d for d in self.days if d not in _DAYS]
        _check(not bad and bool(self.days), where, "days", f"must be a list of {', '.join(_DAYS)}")
        for key in ("start", "end"):
            value = getattr(self, key)
            _check(bool(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d|24:00", value)), where, key, f"must be HH:MM, got {value!r}")
        _check(self.start < self.end, where, "end", "must be after start")


@frozen_model
class Freeze:
    """A change freeze: no deployments between two ISO-8601 instants."""

    start: str
    end: str
    reason: str = ""

    def _validate(self, where: str) -> None:
        from datetime import datetime

        moments = {}
        for key in ("start", "end"):
            value = getattr(self, key)
            try:
                moments[key] = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError(f"{where}.{key}: must be an ISO-8601 instant like 2026-12-24T00:00:00Z, got {value!r}") from None
        if (moments["start"].tzinfo is None) == (moments["end"].tzinfo is None):
            _check(moments["start"] < moments["end"], where, "end", "must be after start")


@frozen_model
class DeploymentWindows:
    """When deployments may run. No `allowed` windows means any time; freezes always apply."""

    timezone: str = "UTC"
    allowed: tuple[Window, ...] = ()
    freezes: tuple[Freeze, ...] = ()

    def _validate(self, where: str) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}.timezone: unknown time zone {self.timezone!r} (an IANA name like Europe/Berlin)") from None


@frozen_model
class Capacity:
    """Room for the extra tasks a strategy starts; None means: ask the account's Fargate quota."""

    max_tasks: int | None = None

    def _validate(self, where: str) -> None:
        _check(self.max_tasks is None or self.max_tasks >= 1, where, "max_tasks", f"must be at least 1 (or unset), got {self.max_tasks}")


@frozen_model
class BlueGreen:
    bake_seconds: int = 300
    require_approval: bool = False
    approval_timeout_seconds: int = 3600

    def _validate(self, where: str) -> None:
        _check(self.bake_seconds >= 0, where, "bake_seconds", f"must be zero or more, got {self.bake_seconds}")
        _check(self.approval_timeout_seconds > 0, where, "approval_timeout_seconds",
               f"must be positive, got {self.approval_timeout_seconds}")


@frozen_model
class Approval:
    """Who may approve a deployment in this environment (the blue/green switch, a progressive stage).

    four_eyes: the person who triggered the run cannot approve it (runbook: "2 engineers minimum").
    Unset: on for the environment named `production`, off elsewhere.
    """

    four_eyes: bool | None = None


# The post-deployment watch's three checks (latticedb_post_deployment_watch: watch_1h, watch_6h, watch_24h).
WATCH_LABELS = ("1h", "6h", "24h")
WATCH_DEFAULT_OFFSETS = (3600.0, 21600.0, 86400.0)  # runbook: "monitor for 24 hours"
WATCH_ON_BY_DEFAULT = ("production",)


@frozen_model
class PostDeployment:
    """post-deployment-checks.sh (timeout, metrics window) and the follow-up watch after a success.

    watch_offsets_seconds: when the watch's three checks run after a successful deployment (seconds;
    unset: 1 h, 6 h, 24 h in production, no watch elsewhere; [] turns it off).
    """

    timeout_seconds: int = 600
    window_seconds: int = 300
    watch_offsets_seconds: tuple[float, ...] | None = None

    def _validate(self, where: str) -> None:
        _check(self.timeout_seconds > 0, where, "timeout_seconds", f"must be positive, got {self.timeout_seconds}")
        _check(self.window_seconds > 0, where, "window_seconds", f"must be positive, got {self.window_seconds}")
        offsets = self.watch_offsets_seconds
        if not offsets:
            return
        shown = "[" + ", ".join(f"{o:g}" for o in offsets) + "]"
        _check(len(offsets) == len(WATCH_LABELS), where, "watch_offsets_seconds",
               f"must be {len(WATCH_LABELS)} offsets in seconds, one per check ({', '.join(WATCH_LABELS)}), "
               f"or [] for no watch; got {len(offsets)}: {shown}")
        _check(all(o >= 0 for o in offsets), where, "watch_offsets_seconds", f"must not be negative, got {shown}")
        _check(list(offsets) == sorted(offsets), where, "watch_offsets_seconds",
               f"must not decrease (the {', '.join(WATCH_LABELS)} checks in order), got {shown}")


@frozen_model
class LoadBalancer:
    """The ALB in front of the two slots (blue and green target groups)."""

    name: str
    blue_target_group: str
    green_target_group: str
    listener_port: int = 443
    test_listener_port: int = 8443


@frozen_model
class Environment:
    """One deployment target: where LatticeDB runs and what "healthy" means there."""

    name: str
    account_id: str
    region: str
    aws_conn_id: str
    cluster: str
    service: str
    green_service: str
    task_family: str
    service_url: str
    load_balancer: LoadBalancer
    test_url: str | None = None  # the test listener: reaches the idle colour without production traffic
    ecr_repository: str = "latticedb"
    # Image cleanup: the one environment whose deployer deletes images from a repository other environments
    # deploy from too (the most protected of them; see image_cleaner). Unmarked, an environment cleans only a
    # repository no other environment may deploy from.
    ecr_repository_owner: bool = False
    container_name: str = "latticedb"
    desired_count: int = 2
    keep_task_definitions: int = 10
    keep_images: int = 20
    allowed_registries: tuple[str, ...] = ()
    # Which strategies may deploy here (runbook strategy table: rolling is "N/A" for production).
    allowed_strategies: tuple[str, ...] = STRATEGY_NAMES
    alarm_prefix: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    slo: Slo | None = None
    metrics: Metrics = field(default_factory=Metrics)
    judge: Judge = field(default_factory=Judge)
    rollout: Rollout = field(default_factory=Rollout)
    smoke: Smoke = field(default_factory=Smoke)
    canary: Canary = field(default_factory=Canary)
    notifications: Notifications = field(default_factory=Notifications)
    strict_preflight: bool = False
    deployment_windows: DeploymentWindows = field(default_factory=DeploymentWindows)
    capacity: Capacity = field(default_factory=Capacity)
    blue_green: BlueGreen = field(default_factory=BlueGreen)
    approval: Approval = field(default_factory=Approval)
    post_deployment: PostDeployment = field(default_factory=PostDeployment)
    redis_conn_id: str = "latticedb_redis"
    lock_table: str = "latticedb-deploy-locks"  # DynamoDB: one deployment per environment at a time
    lock_ttl_seconds: int = 10800  # a crashed run's hold expires after this
    # latticedb_control: a pause longer than this fails the held gate or shift and the rollback runs (a
    # forgotten pause must not leave the new version serving its share, and the environment held, for days).
    max_pause_seconds: int = 14400
    history_table: str = "latticedb-deploy-history"  # DynamoDB: one record per deployment / rollback run
    copy_of: str | None = None  # a local copy (`local_copies`): the environment it was made from
    deployment_log: str = "docs/DEPLOYMENT_LOG.md"  # relative to the repository root unless absolute
    # IAM roles the task definition names (the deployer may pass exactly these): default <task_family>-task / -execution
    task_role: str | None = None
    execution_role: str | None = None

    @property
    def four_eyes(self) -> bool:
        """A second engineer must approve: the run's trigger cannot (default: production only)."""
        return self.name == "production" if self.approval.four_eyes is None else self.approval.four_eyes

    @property
    def judge_mode(self) -> str:
        """absolute | relative | both: `judge.mode`, or (unset) `both` in local/staging/production, else `absolute`."""
        if self.judge.mode is not None:
            return self.judge.mode
        return "both" if self.name in JUDGE_BOTH_BY_DEFAULT else "absolute"

    def gate_limit_seconds(self, interval_seconds: float) -> float:
        """How long a gate (a canary step, a bake) may take to reach a verdict from its start: its interval,
        then as long again (at least 30 s) for conclusive metrics. With the relative judge, never less than
        `judge.min_samples` + 3 of its periods: a side short of samples is never a pass, and CloudWatch's
        periods are clock-aligned (the first is partial) and published a minute or two late, so a 300 s
        step with 60 s periods cannot hold 10 samples a side by 600 s."""
        limit = interval_gate_limit_seconds(interval_seconds)
        if self.judge_mode != "absolute":
            limit = max(limit, (self.judge.min_samples + GATE_SAMPLE_MARGIN_PERIODS) * self.judge_period_seconds)
        return limit

    @property
    def watch_offsets(self) -> tuple[float, ...] | None:
        """When the post-deployment watch checks after a success, or None (no watch here).

        `post_deployment.watch_offsets_seconds`; unset: 1 h, 6 h, 24 h in production, none elsewhere; []: none.
        """
        offsets = self.post_deployment.watch_offsets_seconds
        if offsets is None:
            return WATCH_DEFAULT_OFFSETS if self.name in WATCH_ON_BY_DEFAULT else None
        return offsets or None

    @property
    def judge_period_seconds(self) -> int:
        return self.judge.period_seconds or self.metrics.period_seconds

    @property
    def services(self) -> tuple[str, str]:
        """The blue and green slot services, in that order."""
        return (self.service, self.green_service)

    def _validate(self, where: str) -> None:
        _check(bool(re.fullmatch(r"\d{12}", self.account_id)), where, "account_id", "must be 12 digits")
        _check(self.desired_count >= 1, where, "desired_count", "must be at least 1")
        _check(self.keep_task_definitions >= 2, where, "keep_task_definitions", "must be at least 2")
        _check(self.keep_images >= 1, where, "keep_images", "must be at least 1")
        _check(
            self.service_url.startswith(("http://", "https://")),
            where,
            "service_url",
            f"must be an http(s) URL, got {self.service_url!r}",
        )
        _check(self.service != self.green_service, where, "green_service", "must differ from service")
        unknown = [s for s in self.allowed_strategies if s not in STRATEGY_NAMES]
        _check(bool(self.allowed_strategies) and not unknown, where, "allowed_strategies",
               f"must be a non-empty list of {', '.join(STRATEGY_NAMES)}"
               + (f"; unknown: {', '.join(map(repr, unknown))}" if unknown else ""))
        _check(self.lock_ttl_seconds > 0, where, "lock_ttl_seconds",
               f"must be positive (seconds a run's environment lease lasts between renewals), got {self.lock_ttl_seconds}")
        _check(self.lock_ttl_seconds > self.blue_green.approval_timeout_seconds, where, "lock_ttl_seconds",
               f"must be longer than blue_green.approval_timeout_seconds ({self.blue_green.approval_timeout_seconds}): "
               "the lease is not renewed while a person decides on a switch")
        _check(self.max_pause_seconds > 0, where, "max_pause_seconds",
               f"must be positive (seconds a deployment may stay paused before it rolls back), got {self.max_pause_seconds}")
        _check(self.post_deployment.window_seconds >= 2 * self.metrics.period_seconds, where,
               "post_deployment.window_seconds",
               f"must be at least twice metrics.period_seconds ({self.metrics.period_seconds}), got "
               f"{self.post_deployment.window_seconds}: CloudWatch aligns periods to the clock, so a shorter "
               "window can hold no whole period and its traffic reads as too little to judge")
        _check(
            not self.four_eyes or self.blue_green.require_approval,
            where,
            "approval.four_eyes",
            "needs blue_green.require_approval: true (a second engineer approves the switch); "
            "set approval.four_eyes: false to deploy this environment without one",
        )


def registry_host(env: Environment) -> str:
    return f"{env.account_id}.dkr.ecr.{env.region}.amazonaws.com"


def can_run_from(other: Environment, env: Environment) -> bool:
    """Whether `other`'s pre-flight would accept an image from `env`'s repository (the rule of
    latticedb_deploy.aws.in_use): the same repository name and `env`'s registry in `other`'s
    allowed_registries, or, without that list, the same account."""
    if other.ecr_repository != env.ecr_repository:
        return False
    if other.allowed_registries:
        return registry_host(env) in other.allowed_registries
    return other.account_id == env.account_id


def same_repository(a: Environment, b: Environment) -> bool:
    """`a` and `b` push to, and clean, one ECR repository (account, region and name alike)."""
    return (a.account_id, a.region, a.ecr_repository) == (b.account_id, b.region, b.ecr_repository)


def repository_users(env: Environment, environments: list[Environment]) -> list[Environment]:
    """The other environments that deploy from, or push to, `env`'s repository."""
    return [o for o in environments if o.name != env.name and (can_run_from(o, env) or same_repository(o, env))]


def image_cleaner(env: Environment, environments: list[Environment]) -> Environment | None:
    """The one environment whose deployer deletes images from `env`'s repository, or None (nobody does).

    The repository's owner (`ecr_repository_owner: true`, at most one per repository, checked when the
    file is loaded) if one of its users is marked; else `env` itself if no other environment deploys from
    it; else nobody. So dev and staging, sharing production's repository, never delete what production
    may run or roll back to: production's role cleans it (and its IAM policy alone grants
    ecr:BatchDeleteImage on it, latticedb_deploy.iam_policy).
    """
    users = repository_users(env, environments)
    owners = [e for e in (env, *users) if e.ecr_repository_owner and same_repository(e, env)]
    if owners:
        return owners[0]
    return None if users else env


def may_delete_images(env: Environment, environments: list[Environment]) -> bool:
    cleaner = image_cleaner(env, environments)
    return cleaner is not None and cleaner.name == env.name


def _check_repository_owners(environments: dict[str, Environment], wheres: dict[str, str]) -> None:
    owners = [e for e in environments.values() if e.ecr_repository_owner]
    for i, a in enumerate(owners):
        for b in owners[i + 1:]:
            if same_repository(a, b):
                raise ConfigError(
                    f"{wheres[b.name]}.ecr_repository_owner: {a.name} and {b.name} both own repository "
                    f"{registry_host(a)}/{a.ecr_repository}; only one environment may delete its images "
                    "(mark only the most protected environment that uses it)"
                )


# Five cron fields (numbers, names, * / , -) or a preset: the shape, checked without importing croniter
# at DAG parse time (Airflow's timetable checks the values when the nightly DAG is built).
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
_CRON = re.compile(rf"@(hourly|daily|weekly|monthly|yearly|annually|midnight)|{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}")


@frozen_model
class Nightly:
    """latticedb_nightly_staging: redeploy an environment with the newest matching image every night."""

    schedule: str = "0 2 * * *"
    environment: str = "staging"
    strategy: str = "rolling"
    tag_pattern: str = r"^v\d+\.\d+\.\d+$"
    # A deployment holding the environment when the nightly starts (someone's canary at 02:00) is waited
    # for, deferred, this long before the nightly gives up without deploying; 0: do not wait.
    wait_for_environment_seconds: int = 3600

    def _validate(self, where: str) -> None:
        _check(self.wait_for_environment_seconds >= 0, where, "wait_for_environment_seconds",
               f"must be zero or more (seconds), got {self.wait_for_environment_seconds}")
        _check(bool(_CRON.fullmatch(self.schedule.strip())), where, "schedule",
               f"must be a cron expression like '0 2 * * *' (or @daily, @hourly, ...), got {self.schedule!r}")
        _check(self.strategy in STRATEGY_NAMES, where, "strategy", f"must be one of {', '.join(STRATEGY_NAMES)}, got {self.strategy!r}")
        try:
            re.compile(self.tag_pattern)
        except re.error as exc:
            raise ConfigError(f"{where}.tag_pattern: not a valid regular expression ({exc}): {self.tag_pattern!r}") from None


@frozen_model
class Stage:
    environment: str
    strategy: str
    require_approval: bool = False

    def _validate(self, where: str) -> None:
        _check(self.strategy in STRATEGY_NAMES, where, "strategy", f"must be one of {', '.join(STRATEGY_NAMES)}, got {self.strategy!r}")


@frozen_model
class ProgressiveDelivery:
    """latticedb_progressive_delivery: the runbook's standard production deployment as stages."""

    stages: tuple[Stage, ...] = (
        Stage("staging", "rolling"),
        Stage("production", "canary", require_approval=True),
    )
    # The same route rehearsed on the local stack (local-staging, then local-prod): the DAG follows
    # these instead of `stages` when LATTICEDB_PROGRESSIVE_ROUTE=local.
    local_stages: tuple[Stage, ...] = ()


@frozen_model
class DeployConfig:
    """All environments, keyed by name, and the operations that span them."""

    path: Path
    environments: dict[str, Environment]
    nightly: Nightly = field(default_factory=Nightly)
    progressive_delivery: ProgressiveDelivery = field(default_factory=ProgressiveDelivery)

    @property
    def environment_names(self) -> list[str]:
        return list(self.environments)

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            valid = ", ".join(self.environments)
            raise UnknownEnvironmentError(
                f"unknown environment {name!r} in {self.path}; valid environments: {valid}"
            ) from None


def _check(ok: bool, where: str, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{where}.{key}: {problem}")


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = get_origin(typ)
    if origin is None and is_dataclass(typ):
        return _build(typ, value, where)
    if origin in (tuple,):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list, got {type(value).__name__}")
        inner = get_args(typ)[0]
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    args = get_args(typ)
    if args and type(None) in args:  # Optional[X]
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if typ in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        if typ is int and float(value) != int(value):
            raise ConfigError(f"{where}: must be a whole number, got {value!r}")
        return typ(value)
    if typ is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return str(value)
    return value


@cache
def _class_fields(cls: type) -> tuple[dict, tuple]:
    """get_type_hints compiles every string annotation again on each call: once per class is enough."""
    return get_type_hints(cls), fields(cls)


def _build(cls: type, data: Any, where: str, **extra: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping, got {type(data).__name__}")
    hints, flds = _class_fields(cls)
    known = {f.name for f in flds}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(known - set(extra)))})")
    kwargs = dict(extra)
    for f in flds:
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.name not in extra and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where}.{f.name}: required key is missing")
    obj = cls(**kwargs)
    if hasattr(obj, "_validate"):
        obj._validate(where)
    return obj


_COPY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_PORT_DEFAULT = re.compile(r"(\$\{LATTICEDB_[A-Z0-9_]+_PORT:-)(\d+)\}")


def copy_port_offset(index: int) -> int:
    """Default ports of the index-th local copy (1-based, config order): local's ports + 10 * index."""
    return 10 * index


def _copy_body(origin: str, body: Any, copy: str, index: int) -> Any:
    """`origin`'s raw settings with its name replaced by `copy` wherever it is a word of a name
    (latticedb-local-blue, latticedb_local_aws, ${LATTICEDB_LOCAL_SERVICE_PORT:-8081}) and the
    default ports moved by copy_port_offset(index); `.local/` paths are left alone."""
    if isinstance(body, dict):  # a path (deployment_log) is the copy's too: never rewritten
        return {k: v if k == "deployment_log" else _copy_body(origin, v, copy, index) for k, v in body.items()}
    if isinstance(body, list):
        return [_copy_body(origin, v, copy, index) for v in body]
    if not isinstance(body, str):
        return body
    word = re.compile(rf"(?<=[-_]){re.escape(origin)}(?=[-_]|$)", re.IGNORECASE)

    def replace(m: re.Match) -> str:
        name = copy.replace("-", "_") if m.string[m.start() - 1] == "_" else copy
        return name.upper() if m.group(0).isupper() else name

    out = word.sub(replace, body)
    return _PORT_DEFAULT.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + copy_port_offset(index)}}}", out) if out != body else out


def _local_copies(raw: Any, envs: dict, defaults: dict, cfg_path: Path) -> dict[str, dict]:
    """local_copies: {origin: local, names: {local-2: {overrides}, ...}} -> name -> merged raw settings."""
    if raw is None:
        return {}
    where = f"{cfg_path}: local_copies"
    if not isinstance(raw, dict) or set(raw) - {"of", "names"} or not isinstance(raw.get("names"), dict):
        raise ConfigError(f"{where}: must be a mapping {{of: <environment>, names: {{<name>: {{overrides}}, ...}}}}")
    origin = str(raw.get("of", "local"))
    if origin not in envs or not isinstance(envs[origin], dict):
        raise ConfigError(f"{where}.of: unknown environment {origin!r} (valid: {', '.join(map(str, envs))})")
    base = _merge(defaults, envs[origin])
    out = {}
    for index, (name, overrides) in enumerate(raw["names"].items(), start=1):
        name = str(name)
        if not _COPY_NAME.match(name) or name in envs:
            raise ConfigError(
                f"{where}.names.{name}: a copy needs a new name of lowercase letters, digits and dashes (at most 16)"
            )
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(f"{where}.names.{name}: must be a mapping of overrides")
        body = _copy_body(origin, base, name, index)
        body["ecr_repository"] = f"{base.get('ecr_repository', 'latticedb')}-{name}"  # its own images to push and clean
        body["copy_of"] = origin
        out[name] = _merge(body, overrides or {})
    return out


_loaded: dict[tuple, DeployConfig] = {}


def load_config(path: str | os.PathLike | None = None) -> DeployConfig:
    """Read and validate the deployment config (default: include/config/latticedb.yaml).

    Parsed and validated once per process, and again only when the file's text or the process
    environment (`${VAR}` expansion, the progressive route) changed: every task, check and trigger
    poll asks for it, and parsing and validating it each time was a sixth of a task's CPU. The
    models are frozen, so sharing one is safe. A run reads the file as it was when it started
    (latticedb_deploy.run_config), not this.
    """
    cfg_path = Path(path) if path else config_path()
    try:
        text = cfg_path.read_bytes()
    except OSError:
        return _read_config(cfg_path)  # says what is wrong
    return config_from_text(cfg_path, text.decode())


def config_path() -> Path:
    """The config file this process reads: LATTICEDB_CONFIG, else include/config/latticedb.yaml."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def config_from_text(cfg_path: str | os.PathLike, text: str) -> DeployConfig:
    """The config `text` (read from `cfg_path`, named in errors), validated; cached like load_config."""
    cfg_path = Path(cfg_path)
    # The variables the text names, and LATTICEDB_* (local copies rename local's variables): not the
    # whole environment, which Airflow changes for every task (AIRFLOW_CTX_*).
    names = set(_ENV_REF_NAME.findall(text))
    key = (str(cfg_path), hashlib.sha256(text.encode()).digest(),
           frozenset((k, v) for k, v in os.environ.items() if k in names or k.startswith("LATTICEDB_")))
    found = _loaded.get(key)
    if found is None:
        found = _read_config(cfg_path, text)
        if len(_loaded) > 32:  # tests write many config copies; keep the cache small
            _loaded.clear()
        _loaded[key] = found
    return found


def _read_config(cfg_path: Path, text: str | None = None) -> DeployConfig:
    try:
        raw = yaml.load(cfg_path.read_text() if text is None else text, Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"{cfg_path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{cfg_path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: top level must be a mapping with an 'environments' key")
    top_level = ("defaults", "environments", "local_copies", "nightly", "progressive_delivery")
    unknown = sorted(set(raw) - set(top_level))
    if unknown:
        raise ConfigError(f"{cfg_path}: {unknown[0]}: unknown top-level key (expected {', '.join(top_level)})")
    defaults = raw.get("defaults") or {}
    envs = raw.get("environments")
    if not isinstance(defaults, dict):
        raise ConfigError(f"{cfg_path}: defaults: must be a mapping")
    if not isinstance(envs, dict) or not envs:
        raise ConfigError(f"{cfg_path}: environments: must be a non-empty mapping of environment name to settings")
    environments, wheres = {}, {}
    for name, body in envs.items():
        where = wheres[str(name)] = f"{cfg_path}: environments.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: must be a mapping")
        merged = _expand(_merge(defaults, body))
        environments[str(name)] = _build(Environment, merged, where, name=str(name))
    for name, body in _local_copies(raw.get("local_copies"), envs, defaults, cfg_path).items():
        where = wheres[name] = f"{cfg_path}: local_copies.names.{name}"
        environments[name] = _build(Environment, _expand(body), where, name=name)
    _check_repository_owners(environments, wheres)
    nightly = _build(Nightly, _expand(raw.get("nightly") or {}), f"{cfg_path}: nightly")
    progressive = _build(ProgressiveDelivery, raw.get("progressive_delivery") or {}, f"{cfg_path}: progressive_delivery")
    if os.environ.get(PROGRESSIVE_ROUTE_ENV_VAR) == "local":
        if not progressive.local_stages:
            raise ConfigError(f"{cfg_path}: progressive_delivery.local_stages: needed when {PROGRESSIVE_ROUTE_ENV_VAR}=local")
        progressive = ProgressiveDelivery(stages=progressive.local_stages, local_stages=progressive.local_stages)
    for where, env_name in [("nightly.environment", nightly.environment)] + [
        (f"progressive_delivery.stages[{i}].environment", st.environment) for i, st in enumerate(progressive.stages)
    ] + [
        (f"progressive_delivery.local_stages[{i}].environment", st.environment)
        for i, st in enumerate(progressive.local_stages)
    ]:
        if env_name not in environments:
            raise ConfigError(f"{cfg_path}: {where}: unknown environment {env_name!r} (valid: {', '.join(environments)})")
    for where, env_name, strategy in [("nightly.strategy", nightly.environment, nightly.strategy)] + [
        (f"progressive_delivery.stages[{i}].strategy", st.environment, st.strategy) for i, st in enumerate(progressive.stages)
    ]:
        allowed = environments[env_name].allowed_strategies
        if strategy not in allowed:
            raise ConfigError(
                f"{cfg_path}: {where}: {strategy!r} is not allowed in {env_name} (allowed_strategies: {', '.join(allowed)})"
            )
    return DeployConfig(path=cfg_path, environments=environments, nightly=nightly, progressive_delivery=progressive)
