"""The AWS call ledger: one JSON line per AWS request that reaches the local environment's moto.

Enabled by `LATTICEDB_LOCAL_AWS_LEDGER=<file>` in the environment's process. It sits in the same
WSGI middleware as fault injection (aws_faults.py), so it sees every request from every process
(dag.test() in the test process, subprocess workers, the triggerer) and skips the environment's own
clients (their User-Agent carries the internal marker) and moto's control API.

Each line names the IAM action, the resources the request touches as ARNs, the condition-key values
IAM would see (`ecs:cluster`, `dynamodb:LeadingKeys`, `iam:PassedToService`, ...), authorizations
the request implies (RegisterTaskDefinition with a role -> iam:PassRole), the HTTP status, and
whether it came through Airflow's AWS hook (`airflow`, `caller`). tests/security checks the ledger
against include/iam/<environment>.json.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

LEDGER_ENV = "LATTICEDB_LOCAL_AWS_LEDGER"
_SEEN = "latticedb.ledger"
_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_IAM_PREFIX = {"monitoring": "cloudwatch"}  # SigV4 signing name -> IAM service prefix, where they differ
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


class CallLedger:
    _lock = threading.Lock()  # every hosted environment's ledger appends to the one file

    def __init__(self, path: Path, account: str, environment: str = "local"):
        self.path = path
        self.account = account
        self.environment = environment  # the environment whose endpoint the request came to
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_environment(cls, environment: str = "local") -> CallLedger | None:
        path = os.environ.get(LEDGER_ENV)
        if not path:
            return None
        from .settings import ACCOUNT_ID

        return cls(Path(path), ACCOUNT_ID, environment)

    def observe(self, environ: dict, start_response, app) -> list[bytes]:
        """Serve the request through `app` (which sees it again, marked as seen), then record it."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ[_SEEN] = True
        status: dict[str, int] = {}

        def recording_start_response(line, headers, exc_info=None):
            status["code"] = int(line.split(" ", 1)[0])
            return start_response(line, headers, exc_info) if exc_info else start_response(line, headers)

        result = app(environ, recording_start_response)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        try:
            entry = describe(environ, body, b"".join(chunks), self.account)
        except Exception as exc:  # noqa: BLE001 - the ledger must never break the request it records
            entry = {"action": "unknown", "error": f"ledger could not describe the request: {exc!r}"}
        entry.update(status=status.get("code"), time=time.time(), environment=self.environment)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
        return chunks

    @staticmethod
    def seen(environ: dict) -> bool:
        return bool(environ.get(_SEEN))


def _params(environ: dict, body: bytes) -> tuple[str, dict]:
    """(operation, parameters) for JSON (X-Amz-Target) and query (Action=) protocol requests."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1], json.loads(body or b"{}")
    form = parse_qs(environ.get("QUERY_STRING", ""))
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        form.update(parse_qs(body.decode("utf-8", "replace")))
    flat = {k: v[0] for k, v in form.items()}
    return flat.pop("Action", "unknown"), flat


def _members(params: dict, name: str) -> list[str]:
    """Query-protocol list `Name.member.N` (ordered by N)."""
    found = [(int(k.rsplit(".", 1)[1]), v) for k, v in params.items() if re.fullmatch(rf"{name}\.member\.\d+", k)]
    return [v for _, v in sorted(found)]


def describe(environ: dict, body: bytes, response: bytes, account: str) -> dict:
    auth = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    region, signing = (auth.group(1), auth.group(2)) if auth else ("us-east-1", "unknown")
    service = _IAM_PREFIX.get(signing, signing)
    operation, params = _params(environ, body)
    agent = environ.get("HTTP_USER_AGENT", "")
    caller = re.search(r"Caller/(\S+)", agent)
    entry = {
        "service": service,
        "operation": operation,
        "action": f"{service}:{operation}",
        "airflow": "Airflow/" in agent,
        "caller": caller.group(1) if caller else None,
        "region": region,
    }
    extract = _EXTRACTORS.get(entry["action"])
    if extract is None:
        entry.update(resources=[], context={}, implied=[], mapped=False)
        return entry
    arns = _Arns(region, account)
    resources, context, implied = extract(arns, params, _json(response))
    entry.update(resources=resources, context=context, implied=implied, mapped=True)
    return entry


def _json(response: bytes) -> dict:
    try:
        value = json.loads(response or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class _Arns:
    def __init__(self, region: str, account: str):
        self.region, self.account = region, account

    def make(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def cluster(self, cluster: str | None) -> str:
        cluster = cluster or "default"
        return cluster if cluster.startswith("arn:") else self.make("ecs", f"cluster/{cluster}")

    def service(self, cluster: str | None, service: str) -> str:
        if service.startswith("arn:"):
            return service
        return self.make("ecs", f"service/{self.cluster(cluster).rsplit('/', 1)[-1]}/{service}")

    def task_definition(self, ref: str) -> str:
        return ref if ref.startswith("arn:") else self.make("ecs", f"task-definition/{ref}")


def _leading_key(arns: _Arns, table: str, item: dict) -> list[str]:
    """dynamodb:LeadingKeys: the partition-key value of the item the request names."""
    hash_key = None
    try:
        from moto.dynamodb.models import dynamodb_backends

        hash_key = dynamodb_backends[arns.account][arns.region].get_table(table).hash_key_attr
    except Exception:  # noqa: BLE001 - unknown table: fall back to a one-attribute key
        if len(item) == 1:
            hash_key = next(iter(item))
    value = item.get(hash_key) if hash_key else None
    return [next(iter(value.values()))] if isinstance(value, dict) and value else []


def _describe_services(arns, p, r):
    return [arns.service(p.get("cluster"), s) for s in p.get("services", [])], {"ecs:cluster": arns.cluster(p.get("cluster"))}, []


def _update_service(arns, p, r):
    context = {}
    if p.get("taskDefinition"):
        context["ecs:task-definition"] = arns.task_definition(p["taskDefinition"])
    return [arns.service(p.get("cluster"), p["service"])], context, []


def _list_services(arns, p, r):
    cluster = arns.cluster(p.get("cluster"))
    return [cluster], {"ecs:cluster": cluster}, []


def _list_tasks(arns, p, r):
    """ListTasks' only resource type is the container instance: a call naming one is authorized against it;
    a call naming none (cluster, serviceName, desiredStatus) against "*", as AWS does ("not authorized to
    perform: ecs:ListTasks on resource: *"). Either way narrowed by ecs:cluster."""
    cluster = arns.cluster(p.get("cluster"))
    name = cluster.rsplit("/", 1)[-1]
    instance = p.get("containerInstance")
    if not instance:
        resource = "*"
    elif instance.startswith("arn:"):
        resource = instance
    else:
        resource = arns.make("ecs", f"container-instance/{name}/{instance}")
    return [resource], {"ecs:cluster": cluster}, []


def _describe_tasks(arns, p, r):
    cluster = arns.cluster(p.get("cluster"))
    name = cluster.rsplit("/", 1)[-1]
    tasks = [t if t.startswith("arn:") else arns.make("ecs", f"task/{name}/{t}") for t in p.get("tasks", [])]
    return tasks, {"ecs:cluster": cluster}, []


def _describe_clusters(arns, p, r):
    return [arns.cluster(c) for c in p.get("clusters") or ["default"]], {}, []


def _register_task_definition(arns, p, r):
    arn = (r.get("taskDefinition") or {}).get("taskDefinitionArn") or arns.task_definition(f"{p.get('family')}:*")
    roles = sorted({p[k] for k in ("taskRoleArn", "executionRoleArn") if p.get(k)})
    implied = [{"action": "iam:PassRole", "resources": roles, "context": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}}] if roles else []
    return [arn], {}, implied


def _task_definition(arns, p, r):
    return [arns.task_definition(p["taskDefinition"])], {}, []


def _list_task_definitions(arns, p, r):
    prefix = p.get("familyPrefix")
    return ([arns.task_definition(f"{prefix}:*")] if prefix else []), {}, []


def _repository(arns, p, r):
    account = p.get("registryId") or arns.account
    names = p.get("repositoryNames") or ([p["repositoryName"]] if p.get("repositoryName") else [])
    return [f"arn:aws:ecr:{arns.region}:{account}:repository/{n}" for n in names], {}, []


def _dynamodb_item(arns, p, r):
    table = p["TableName"]
    item = p.get("Key") or p.get("Item") or {}
    return [arns.make("dynamodb", f"table/{table}")], {"dynamodb:LeadingKeys": _leading_key(arns, table, item)}, []


def _dynamodb_query(arns, p, r):
    """A Query's dynamodb:LeadingKeys: the partition-key value its key condition names (`key = :value`)."""

    table = p["TableName"]
    values = p.get("ExpressionAttributeValues") or {}
    keys = []
    for name, placeholder in re.findall(r"#?(\w+)\s*=\s*(:\w+)", p.get("KeyConditionExpression") or ""):
        typed = values.get(placeholder)
        if isinstance(typed, dict) and typed:
            keys.append((name, next(iter(typed.values()))))
    item = {name: {"S": value} for name, value in keys}
    return [arns.make("dynamodb", f"table/{table}")], {"dynamodb:LeadingKeys": _leading_key(arns, table, item)}, []


def _elb(kind: str, *names: str):
    def extract(arns, p, r):
        found = [p[n] for n in names if p.get(n)]
        for n in names:
            found += _members(p, n)
        return sorted({v if v.startswith("arn:") else arns.make("elasticloadbalancing", kind.format(v)) for v in found}), {}, []

    return extract


def _describe_alarms(arns, p, r):
    names = p.get("AlarmNames") or []
    # Composite alarms are returned only to DescribeAlarms scoped to "*" (CloudWatch API reference).
    if not names or "CompositeAlarm" in (p.get("AlarmTypes") or []):
        return ["*"], {}, []
    return [arns.make("cloudwatch", f"alarm:{n}") for n in names], {}, []


def _star(arns, p, r):
    return ["*"], {}, []


def _service_quota(arns, p, r):
    code = p.get("ServiceCode", "")
    return [arns.make("servicequotas", f"{code}/{p.get('QuotaCode', '')}")], {"servicequotas:service": code}, []


_EXTRACTORS = {
    "ecs:DescribeServices": _describe_services,
    "ecs:UpdateService": _update_service,
    "ecs:ListServices": _list_services,
    "ecs:DescribeClusters": _describe_clusters,
    "ecs:ListTasks": _list_tasks,
    "ecs:DescribeTasks": _describe_tasks,
    "ecs:RegisterTaskDefinition": _register_task_definition,
    "ecs:DescribeTaskDefinition": _task_definition,
    "ecs:DeregisterTaskDefinition": _task_definition,
    "ecs:ListTaskDefinitions": _list_task_definitions,
    "ecr:DescribeImages": _repository,
    "ecr:DescribeImageScanFindings": _repository,
    "ecr:DescribeRepositories": _repository,
    "ecr:BatchDeleteImage": _repository,
    "ecr:ListImages": _repository,
    "dynamodb:GetItem": _dynamodb_item,
    "dynamodb:PutItem": _dynamodb_item,
    "dynamodb:UpdateItem": _dynamodb_item,
    "dynamodb:DeleteItem": _dynamodb_item,
    "dynamodb:Query": _dynamodb_query,
    "elasticloadbalancing:ModifyListener": _elb("{}", "ListenerArn"),
    "elasticloadbalancing:DescribeListeners": _elb("{}", "LoadBalancerArn", "ListenerArns"),
    "elasticloadbalancing:DescribeTargetHealth": _elb("{}", "TargetGroupArn"),
    "elasticloadbalancing:DescribeTargetGroups": _elb("targetgroup/{}/*", "TargetGroupArns", "Names"),
    "elasticloadbalancing:DescribeLoadBalancers": _elb("loadbalancer/app/{}/*", "LoadBalancerArns", "Names"),
    "cloudwatch:DescribeAlarms": _describe_alarms,
    "cloudwatch:GetMetricData": _star,
    "servicequotas:GetServiceQuota": _service_quota,
    "servicequotas:GetAWSDefaultServiceQuota": _service_quota,
    "sts:GetCallerIdentity": _star,
}
