"""Create, idempotently, every AWS resource a local environment (`local` or a copy) in the config names.

Runs through boto3 against the moto endpoint, exactly like an operator with an AWS account
would (network, ALB, listeners, target groups, ECR images, ECS cluster/services, alarms).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .scenarios import Behaviour, Scenarios
from .settings import ACCOUNT_ID

log = logging.getLogger(__name__)

CONTAINER_PORT = 8080
HEALTH_PATH = "/health"


@dataclass
class Topology:
    """ARNs and names of what the bootstrap created; the simulator and the stand-in read it."""

    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    security_group_id: str = ""
    load_balancer_arn: str = ""
    load_balancer_dimension: str = ""  # app/<name>/<id>
    listener_arn: str = ""
    test_listener_arn: str = ""
    target_groups: dict[str, str] = field(default_factory=dict)  # name -> arn
    repository_uri: str = ""
    digests: dict[str, str] = field(default_factory=dict)  # tag -> sha256:...
    task_definition_arn: str = ""
    service_arns: dict[str, str] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def target_group_dimension(arn: str) -> str:
    """CloudWatch's TargetGroup dimension: the ARN suffix `targetgroup/<name>/<id>`."""
    return arn.split(":", 5)[5]


def load_balancer_dimension(arn: str) -> str:
    """CloudWatch's LoadBalancer dimension: `app/<name>/<id>`."""
    return arn.split(":loadbalancer/", 1)[1]


def _manifest(tag: str) -> str:
    """A distinct, deterministic image manifest per tag, so each tag gets its own digest."""
    layer = "sha256:" + hashlib.sha256(f"latticedb-layer-{tag}".encode()).hexdigest()
    config = "sha256:" + hashlib.sha256(f"latticedb-config-{tag}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": config},
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": layer}
            ],
        }
    )


class _SameFindingsForAnyQuery(dict):
    """moto keys canned scan results by the exact imageId a caller passed; answer them all."""

    def __init__(self, response: dict):
        super().__init__()
        self._response = response

    def __contains__(self, key) -> bool:  # noqa: D105
        return True

    def __getitem__(self, key):  # noqa: D105
        return self._response


def _scan_response(repository: str, tag: str, digest: str, behaviour: Behaviour) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    findings = []
    for severity, count in behaviour.scan_findings.items():
        for i in range(count):
            cve = f"CVE-2025-{abs(hash((tag, severity, i))) % 90000 + 10000}"
            findings.append(
                {
                    "name": cve,
                    "uri": f"https://nvd.nist.gov/vuln/detail/{cve}",
                    "severity": severity,
                    "description": f"simulated {severity.lower()} finding in {tag}",
                    "attributes": [{"key": "package_name", "value": "libsimulated"}],
                }
            )
    return {
        "registryId": ACCOUNT_ID,
        "repositoryName": repository,
        "imageId": {"imageDigest": digest, "imageTag": tag},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {
            "imageScanCompletedAt": now,
            "vulnerabilitySourceUpdatedAt": now,
            "findings": findings,
            "findingSeverityCounts": dict(behaviour.scan_findings),
        },
    }


def bootstrap(env, scenarios: Scenarios, moto) -> Topology:
    """Find or create everything; safe to run again on a bootstrapped moto."""
    topo = Topology()
    ec2, elb, ecr, ecs, cw = (moto.client(s) for s in ("ec2", "elbv2", "ecr", "ecs", "cloudwatch"))
    lb = env.load_balancer
    _network(ec2, env, topo)
    _load_balancer(elb, env, topo)
    _images(ecr, moto, env, scenarios, topo)
    ecs.create_cluster(clusterName=env.cluster)  # idempotent in ECS and in moto
    _task_definition(ecs, env, scenarios, topo)
    _services(ecs, env, topo, lb)
    _alarms(cw, env, topo)
    _lock_table(moto.client("dynamodb"), env)
    _history_table(moto.client("dynamodb"), env)
    log.info(
        "bootstrap complete: alb %s, target groups %s, services %s, alarms %s",
        lb.name,
        sorted(topo.target_groups),
        sorted(topo.service_arns),
        topo.alarms,
    )
    log.debug("topology: %s", json.dumps(topo.as_dict(), default=str))
    return topo


def _network(ec2, env, topo: Topology) -> None:
    name = f"{env.cluster}-vpc"
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
    if vpcs:
        topo.vpc_id = vpcs[0]["VpcId"]
    else:
        topo.vpc_id = ec2.create_vpc(
            CidrBlock="10.42.0.0/16",
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}],
        )["Vpc"]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [topo.vpc_id]}])["Subnets"]
    by_cidr = {s["CidrBlock"]: s["SubnetId"] for s in subnets}
    for i, az in enumerate(("a", "b")):
        cidr = f"10.42.{i}.0/24"
        if cidr not in by_cidr:
            by_cidr[cidr] = ec2.create_subnet(
                VpcId=topo.vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=f"{env.region}{az}",
                TagSpecifications=[
                    {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": f"{env.cluster}-{az}"}]}
                ],
            )["Subnet"]["SubnetId"]
        topo.subnet_ids.append(by_cidr[cidr])
    sg_name = f"{env.cluster}-sg"
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [topo.vpc_id]}, {"Name": "group-name", "Values": [sg_name]}]
    )["SecurityGroups"]
    if groups:
        topo.security_group_id = groups[0]["GroupId"]
    else:
        topo.security_group_id = ec2.create_security_group(
            GroupName=sg_name, Description="LatticeDB local", VpcId=topo.vpc_id
        )["GroupId"]


def _load_balancer(elb, env, topo: Topology) -> None:
    lb = env.load_balancer
    try:
        alb = elb.describe_load_balancers(Names=[lb.name])["LoadBalancers"][0]
    except elb.exceptions.LoadBalancerNotFoundException:
        alb = elb.create_load_balancer(
            Name=lb.name,
            Subnets=topo.subnet_ids,
            SecurityGroups=[topo.security_group_id],
            Scheme="internal",
            Type="application",
            IpAddressType="ipv4",
        )["LoadBalancers"][0]
    topo.load_balancer_arn = alb["LoadBalancerArn"]
    topo.load_balancer_dimension = load_balancer_dimension(topo.load_balancer_arn)
    for tg_name in (lb.blue_target_group, lb.green_target_group):
        try:
            tg = elb.describe_target_groups(Names=[tg_name])["TargetGroups"][0]
        except elb.exceptions.TargetGroupNotFoundException:
            tg = elb.create_target_group(
                Name=tg_name,
                Protocol="HTTP",
                Port=CONTAINER_PORT,
                VpcId=topo.vpc_id,
                TargetType="ip",
                HealthCheckProtocol="HTTP",
                HealthCheckPath=HEALTH_PATH,
                HealthCheckIntervalSeconds=10,
                HealthyThresholdCount=2,
                UnhealthyThresholdCount=2,
                Matcher={"HttpCode": "200"},
            )["TargetGroups"][0]
        topo.target_groups[tg_name] = tg["TargetGroupArn"]
    listeners = {
        x["Port"]: x["ListenerArn"] for x in elb.describe_listeners(LoadBalancerArn=topo.load_balancer_arn)["Listeners"]
    }
    blue, green = topo.target_groups[lb.blue_target_group], topo.target_groups[lb.green_target_group]
    wanted = {
        lb.listener_port: [{"TargetGroupArn": blue, "Weight": 100}, {"TargetGroupArn": green, "Weight": 0}],
        lb.test_listener_port: [{"TargetGroupArn": green, "Weight": 100}],
    }
    for port, groups in wanted.items():
        if port not in listeners:
            listeners[port] = elb.create_listener(
                LoadBalancerArn=topo.load_balancer_arn,
                Protocol="HTTP",
                Port=port,
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
            )["Listeners"][0]["ListenerArn"]
    topo.listener_arn = listeners[lb.listener_port]
    topo.test_listener_arn = listeners[lb.test_listener_port]


def _images(ecr, moto, env, scenarios: Scenarios, topo: Topology) -> None:
    repo_name = env.ecr_repository
    try:
        repo = ecr.describe_repositories(repositoryNames=[repo_name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        repo = ecr.create_repository(repositoryName=repo_name, imageScanningConfiguration={"scanOnPush": True})[
            "repository"
        ]
    topo.repository_uri = repo["repositoryUri"]
    existing = {}
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo_name):
        for d in page["imageDetails"]:
            for t in d.get("imageTags") or []:
                existing[t] = d["imageDigest"]
    backend_repo = moto.ecr_backend().repositories[repo_name]
    for tag, behaviour in scenarios.images.items():
        if tag not in existing:
            existing[tag] = ecr.put_image(
                repositoryName=repo_name,
                imageManifest=_manifest(tag),
                imageTag=tag,
                imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
            )["image"]["imageId"]["imageDigest"]
        digest = topo.digests[tag] = existing[tag]
        image = backend_repo._get_image(tag, None)
        if not image.last_scan:
            ecr.start_image_scan(repositoryName=repo_name, imageId={"imageTag": tag})
        image.scan_finding_results = _SameFindingsForAnyQuery(_scan_response(repo_name, tag, digest, behaviour))


def _task_definition(ecs, env, scenarios: Scenarios, topo: Topology) -> None:
    arns = ecs.list_task_definitions(familyPrefix=env.task_family, sort="ASC")["taskDefinitionArns"]
    if arns:
        topo.task_definition_arn = arns[0]
        return
    image = f"{topo.repository_uri}@{topo.digests[scenarios.initial]}"
    from latticedb_deploy.iam_policy import Arns

    roles = Arns(env)  # as on AWS: the revisions the DAGs register pass these two roles (iam:PassRole)
    topo.task_definition_arn = ecs.register_task_definition(
        family=env.task_family,
        taskRoleArn=roles.task_role,
        executionRoleArn=roles.execution_role,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {
                "name": env.container_name,
                "image": image,
                "essential": True,
                "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": CONTAINER_PORT, "protocol": "tcp"}],
                "healthCheck": {
                    "command": ["CMD-SHELL", f"curl -fsS http://localhost:{CONTAINER_PORT}{HEALTH_PATH} || exit 1"],
                    "interval": 10,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 10,
                },
                "environment": [{"name": "LATTICEDB_ENV", "value": env.name}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def _services(ecs, env, topo: Topology, lb) -> None:
    existing = {
        s["serviceName"]: s
        for s in ecs.describe_services(cluster=env.cluster, services=list(env.services))["services"]
        if s.get("status") == "ACTIVE"
    }
    slots = ((env.service, lb.blue_target_group, env.desired_count), (env.green_service, lb.green_target_group, 0))
    for name, tg_name, desired in slots:
        if name in existing:
            topo.service_arns[name] = existing[name]["serviceArn"]
            continue
        svc = ecs.create_service(
            cluster=env.cluster,
            serviceName=name,
            taskDefinition=topo.task_definition_arn,
            desiredCount=desired,
            launchType="FARGATE",
            platformVersion="LATEST",
            loadBalancers=[
                {
                    "targetGroupArn": topo.target_groups[tg_name],
                    "containerName": env.container_name,
                    "containerPort": CONTAINER_PORT,
                }
            ],
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": topo.subnet_ids,
                    "securityGroups": [topo.security_group_id],
                    "assignPublicIp": "DISABLED",
                }
            },
            deploymentController={"type": "ECS"},
        )["service"]
        # moto's create_service ignores deploymentConfiguration; update_service stores it.
        ecs.update_service(
            cluster=env.cluster,
            service=name,
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        )
        topo.service_arns[name] = svc["serviceArn"]


def _lock_table(ddb, env) -> None:
    """The table the DAGs use to hold an environment for one deployment at a time."""
    if env.lock_table in ddb.list_tables()["TableNames"]:
        return
    ddb.create_table(
        TableName=env.lock_table,
        KeySchema=[{"AttributeName": "environment", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "environment", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _history_table(ddb, env) -> None:
    """The deployment history (latticedb_deploy.aws.history): environment + run_key, newest last."""
    if env.history_table in ddb.list_tables()["TableNames"]:
        return
    ddb.create_table(
        TableName=env.history_table,
        KeySchema=[{"AttributeName": "environment", "KeyType": "HASH"}, {"AttributeName": "run_key", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "environment", "AttributeType": "S"},
            {"AttributeName": "run_key", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _alarms(cw, env, topo: Topology) -> None:
    lb_dim = [{"Name": "LoadBalancer", "Value": topo.load_balancer_dimension}]
    specs = {
        "high-error-rate": dict(MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Threshold=25.0),
        "high-latency": dict(MetricName="TargetResponseTime", Statistic="Average", Threshold=1.0),
        "unhealthy-hosts": dict(MetricName="UnHealthyHostCount", Statistic="Maximum", Threshold=0.0),
    }
    existing = {a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix=env.alarm_prefix)["MetricAlarms"]}
    for suffix, spec in specs.items():
        name = f"{env.alarm_prefix}{suffix}"
        if name not in existing:
            cw.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/ApplicationELB",
                Dimensions=lb_dim,
                Period=60,
                EvaluationPeriods=1,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                AlarmDescription=f"LatticeDB local: {suffix}",
                **spec,
            )
            cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="bootstrap: steady state")
        topo.alarms.append(name)
