"""Play ECS's scheduler on moto's ECS backend: roll deployments, fail tasks, trip the circuit breaker.

moto stores services but never moves a deployment. This thread does what ECS would do, only
by editing moto's in-memory Service objects, so any client (the DAGs included) sees realistic
`deployments`, `runningCount` and `events` through the ordinary API and knows nothing of it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
import zlib

from moto.core.utils import utcnow

from .consistency import STALE_READS, from_product, product_read, set_product_read

log = logging.getLogger(__name__)

FAILURES_TO_TRIP = 3
CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
CRASH_REASON = "Essential container in task exited"
CRASH_EXIT_CODE = 1
STOPPED_TASKS_KEPT = 50  # per cluster (ECS keeps stopped tasks for about an hour)


def _new_id() -> str:
    return f"ecs-svc/{random.randint(10**18, 10**19 - 1)}"


CONTAINER_NAME = "latticedb"  # every local environment's main container (config: container_name)


class EcsEmulator:
    """One scheduler for every environment of the stack (all clusters in moto's ECS backend)."""

    def __init__(self, moto, scenarios, resolver, settings, world_lock: threading.RLock):
        self._moto = moto
        self._scenarios = scenarios
        self._resolver = resolver
        self._rollout = settings.rollout_seconds
        self._retention = settings.failed_retention_seconds
        self._tick = settings.emulator_tick_seconds
        self._grace = settings.health_grace_seconds
        STALE_READS.lag = getattr(settings, "describe_lag_seconds", 0.0)
        self._registered_at: dict[tuple[str, str], float] = {}  # (target group arn, target id) -> time
        self._lock = world_lock
        self._known: dict[str, dict] = {}  # deployment id -> timing state
        self._snapshots: dict[str, list[dict]] = {}  # service arn -> deployments we last wrote
        self._stop = threading.Event()
        self._paused: set[str] = set()  # clusters being reset: not stepped by the scheduler thread
        self._thread = threading.Thread(target=self._run, name="ecs-emulator", daemon=True)

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._install_hooks()
        self._thread.start()

    def _install_hooks(self) -> None:
        """React inside create/update_service, as ECS does: the response already shows the new deployment."""
        from moto.ecs.models import EC2ContainerServiceBackend as Backend

        emulator = self
        for name in ("create_service", "update_service"):
            original = getattr(Backend, name)
            if getattr(original, "_latticedb_local", False):
                continue

            def hooked(backend, *args, _original=original, _name=name, **kwargs):
                if _name == "update_service" and product_read():  # a reset or a test's own change is seen at once
                    emulator.before_update(backend, args[0] if args else kwargs.get("service_properties") or {})
                svc = _original(backend, *args, **kwargs)
                emulator.observe(svc)
                return svc

            hooked._latticedb_local = True
            setattr(Backend, name, hooked)
        self._install_health_hook()
        self._install_consistency_hooks()

    def _install_consistency_hooks(self) -> None:
        """The product's DescribeServices may see a service as it was before its last update, for
        settings.describe_lag_seconds (latticedb_local.consistency); everyone else reads the truth."""
        from moto.ecs.models import EC2ContainerServiceBackend as Backend
        from moto.ecs.responses import EC2ContainerServiceResponse as Responses

        if getattr(Responses.describe_services, "_latticedb_local", False):
            return
        read = Backend.describe_services

        def from_the_product(answer):
            def answered(responses):
                set_product_read(from_product(str((responses.headers or {}).get("User-Agent", ""))))
                try:
                    return answer(responses)
                finally:
                    set_product_read(False)

            answered._latticedb_local = True
            return answered

        def describe_services(backend, cluster_str, service_names_or_arns):
            services, failures = read(backend, cluster_str, service_names_or_arns)
            if product_read():
                services = [STALE_READS.view(svc.arn, svc) for svc in services]
            return services, failures

        Responses.describe_services = from_the_product(Responses.describe_services)
        Responses.update_service = from_the_product(Responses.update_service)
        Backend.describe_services = describe_services

    def _install_health_hook(self) -> None:
        """Targets answer `initial` until they have been registered for the health-check grace time
        (moto calls every registered target healthy at once; an ALB does not)."""
        from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

        original = FakeTargetGroup.health_for
        if getattr(original, "_latticedb_local", False):
            return
        emulator = self

        def health_for(tg, target, ec2_backend, _original=original):
            status = _original(tg, target, ec2_backend)
            registered = emulator._registered_at.get((tg.arn, target["Id"]))
            if status.status == "healthy" and registered is not None and time.time() - registered < emulator._grace:
                return FakeHealthStatus(
                    status.instance_id, status.port, status.health_check_port, "initial",
                    "Elb.RegistrationInProgress", "Target registration is in progress",
                )
            return status

        health_for._latticedb_local = True
        FakeTargetGroup.health_for = health_for

    def before_update(self, backend, props: dict) -> None:
        """Keep the service's description as it is before an UpdateService: the deployment's reads may see it
        for a moment after (latticedb_local.consistency)."""
        try:
            svc = backend._get_service(props.get("cluster") or "default", str(props.get("service", "")).split("/")[-1])
            STALE_READS.before_update(svc.arn, svc, shared=(backend,))
        except Exception:
            log.exception("ecs emulator could not keep the description before an update")

    def observe(self, svc) -> None:
        """Apply one scheduler step to `svc` right now (called from moto's request thread)."""
        try:
            with self._lock:
                self._step(svc, time.time())
        except Exception:
            log.exception("ecs emulator failed to observe %s", getattr(svc, "name", svc))

    def stop(self) -> None:
        self._stop.set()

    def pause(self, cluster: str) -> None:
        with self._lock:
            self._paused.add(cluster)

    def resume(self, cluster: str) -> None:
        with self._lock:
            self._paused.discard(cluster)

    def forget(self, service_arns: list[str], target_group_arns: list[str]) -> None:
        """Forget the deployment state of removed services and target groups (one environment's reset)."""
        with self._lock:
            for arn in service_arns:
                for dep in self._snapshots.pop(arn, []):
                    self._known.pop(dep.get("id"), None)
            tgs = set(target_group_arns)
            self._registered_at = {k: v for k, v in self._registered_at.items() if k[0] not in tgs}

    def adopt_steady_state(self, cluster: str) -> None:
        """Mark every current deployment of `cluster` as done: the environment starts out settled."""
        with self._lock:
            tgs = set()
            for svc in self._services():
                if svc.cluster_name != cluster:
                    continue
                tgs.update(lb.get("targetGroupArn") for lb in svc.load_balancers or [])
                deps = [dict(d) for d in svc.deployments]
                for dep in deps:
                    self._known[dep["id"]] = {"started": 0.0, "last_fail": 0.0, "failed_at": None}
                    if dep["status"] == "PRIMARY":
                        self._complete(svc, dep, quiet=True)
                svc.task_definition = self._resolve_td(svc.task_definition) or svc.task_definition
                self._write(svc, [d for d in deps if d["status"] == "PRIMARY"])
                self._event(svc, "has reached a steady state.")
            for key in self._registered_at:  # settled: healthy already
                if key[0] in tgs:
                    self._registered_at[key] = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                with self._lock:
                    for svc in self._services():
                        if svc.cluster_name not in self._paused:
                            self._step(svc, time.time())
            except Exception:  # keep scheduling whatever one bad tick did
                log.exception("ecs emulator tick failed")

    # one service, one tick -------------------------------------------------------------
    def _services(self):
        backend = self._moto.ecs_backend()
        return [s for s in list(backend.services.values()) if s.status == "ACTIVE"]

    def _step(self, svc, now: float) -> None:
        if getattr(svc, "deployment_controller", {}).get("type", "ECS") != "ECS":
            return
        deps = [dict(d) for d in svc.deployments]
        td_arn = self._resolve_td(svc.task_definition)
        if td_arn and svc.task_definition != td_arn:
            svc.task_definition = td_arn  # ECS always reports the full ARN
        primary = next((d for d in deps if d["status"] == "PRIMARY"), None)
        if primary is None or primary["id"] not in self._known:
            deps = self._forced_or_created(svc, deps, primary, td_arn, now)
        elif td_arn and primary["taskDefinition"] != td_arn:
            primary["status"] = "ACTIVE"
            deps.insert(0, self._new_deployment(svc, td_arn, now))
            log.info("%s: new deployment for %s", svc.name, td_arn.rsplit("/", 1)[-1])
        primary = deps[0] if deps[0]["status"] == "PRIMARY" else next(d for d in deps if d["status"] == "PRIMARY")
        deps = self._advance(svc, primary, deps, now)
        deps = [d for d in deps if not self._expired(d, now)]
        self._write(svc, deps)

    def _forced_or_created(self, svc, deps, primary, td_arn, now) -> list[dict]:
        """An unseen PRIMARY id: moto's forceNewDeployment renamed it, or the service is new."""
        previous = self._snapshots.get(svc.arn)
        new = self._new_deployment(
            svc, td_arn or (primary or {}).get("taskDefinition"), now, dep_id=(primary or {}).get("id")
        )
        if not previous:
            log.info("%s: service created, rolling out %s", svc.name, new["taskDefinition"].rsplit("/", 1)[-1])
            return [new]
        rest = [dict(d) for d in previous]
        for d in rest:
            if d["status"] == "PRIMARY":
                d["status"] = "ACTIVE"
        log.info("%s: forced new deployment %s", svc.name, new["id"])
        return [new] + rest

    def _advance(self, svc, primary, deps, now) -> list[dict]:
        state = self._known[primary["id"]]
        desired = svc.desired_count
        primary["desiredCount"] = desired
        if primary["rolloutState"] == "COMPLETED":
            if desired > 0 and self._scenarios.behaviour(self._tag_of(primary["taskDefinition"])).crash:
                # completed at 0 tasks, now scaled up: its tasks fail to start like any other time
                primary.update(runningCount=0, pendingCount=desired)
                self._fail_task(svc, primary, state, now)
                return deps
            self._scale(svc, primary, state, desired, now)
            return deps
        if primary["rolloutState"] == "FAILED":
            primary.update(runningCount=0, pendingCount=0)
            return deps
        behaviour = self._scenarios.behaviour(self._tag_of(primary["taskDefinition"]))
        elapsed = now - state["started"]
        if desired == 0 or (not behaviour.crash and elapsed >= self._rollout):
            self._complete(svc, primary)
            return [primary] + [d for d in deps if d is not primary and d["rolloutState"] == "FAILED"]
        if not behaviour.crash:
            running = min(desired - 1, int(desired * elapsed / self._rollout))
            primary.update(runningCount=running, pendingCount=desired - running)
            return deps
        primary.update(runningCount=0, pendingCount=desired)
        self._fail_task(svc, primary, state, now)
        breaker = (getattr(svc, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
        if primary["failedTasks"] >= FAILURES_TO_TRIP and breaker.get("enable"):
            return self._trip(svc, primary, deps, bool(breaker.get("rollback")), now)
        return deps

    def _scale(self, svc, dep, state, desired: int, now: float) -> None:
        """A settled deployment whose desired count changed. Scaling in is immediate (tasks stop at
        once, the harsher case for traffic); scaling out starts tasks over the rollout time, as ECS
        needs time to place, start and health-check them: runningCount grows one task at a time."""
        running = dep["runningCount"]
        if running == desired:
            state.pop("scale", None)
            return
        if running > desired:
            log.info("%s: scaled in to %d", svc.name, desired)
            dep.update(runningCount=desired, pendingCount=0, updatedAt=utcnow())
            state.pop("scale", None)
            self._event(svc, "has reached a steady state.")
            return
        scale = state.get("scale")
        if scale is None or scale["to"] != desired:
            scale = state["scale"] = {"from": running, "to": desired, "started": now}
            self._event(svc, f"has started {desired - running} tasks: (deployment {dep['id']}).")
            log.info("%s: scaling out %d -> %d", svc.name, running, desired)
        grown = int((desired - scale["from"]) * (now - scale["started"]) / self._rollout) if self._rollout > 0 else desired
        running = min(desired, scale["from"] + grown)
        dep.update(runningCount=running, pendingCount=desired - running, updatedAt=utcnow())
        if running == desired:
            state.pop("scale", None)
            log.info("%s: scaled out to %d", svc.name, desired)
            self._event(svc, "has reached a steady state.")

    def _fail_task(self, svc, dep, state, now) -> None:
        """A crashing image: one more task exits, every rollout/3 seconds."""
        if now - state["last_fail"] < max(self._rollout / FAILURES_TO_TRIP, self._tick):
            return
        state["last_fail"] = now
        dep["failedTasks"] = dep.get("failedTasks", 0) + 1
        dep["updatedAt"] = utcnow()
        task = self._stopped_task(svc, dep, CRASH_REASON, CRASH_EXIT_CODE)
        self._event(svc, f"has stopped 1 running tasks: (task {task}). Reason: {CRASH_REASON}")
        log.info("%s: task failed in %s (failedTasks=%d)", svc.name, dep["id"], dep["failedTasks"])

    def _stopped_task(self, svc, dep, reason: str, exit_code: int) -> str:
        """Publish a STOPPED task in moto's ECS backend, as ECS leaves one behind (ListTasks
        desiredStatus=STOPPED, DescribeTasks: stoppedReason, stopCode, the container's exit code).
        moto's Task is built around a stand-in for the task definition without awsvpc, so no ENI is
        created. Returns the task id (or a random one if moto's model would not take it)."""
        try:
            import types

            from moto.ecs.models import Task

            backend = self._moto.ecs_backend()
            cluster = next(c for c in backend.clusters.values() if c.arn == svc.cluster_arn)
            td = backend.describe_task_definition(dep["taskDefinition"])
            stand_in = types.SimpleNamespace(arn=td.arn, container_definitions=td.container_definitions, network_mode=None)
            task = Task(
                cluster, stand_in, None, None, backend, group=f"service:{svc.name}",
                launch_type=svc.launch_type or "FARGATE", started_by=dep["id"],
            )
            task.desired_status = task.last_status = "STOPPED"
            task.stopped_reason, task.stop_code = reason, "EssentialContainerExited"
            task.stopping_at = task.stopped_at = utcnow()
            for container in task.containers:
                container.last_status, container.exitCode = "STOPPED", exit_code
                container.reason = f"{reason} with exit code {exit_code}"
            tasks = backend.tasks.setdefault(cluster.name, {})
            tasks[task.task_arn] = task
            stopped = [arn for arn, t in tasks.items() if t.desired_status == "STOPPED"]
            for arn in stopped[:-STOPPED_TASKS_KEPT]:
                tasks.pop(arn, None)
            return task.id
        except Exception:  # noqa: BLE001 - the events and counts still tell the story
            log.exception("%s: could not publish a stopped task", svc.name)
            return uuid.uuid4().hex

    def _trip(self, svc, primary, deps, rollback: bool, now) -> list[dict]:
        primary.update(
            rolloutState="FAILED",
            rolloutStateReason=CIRCUIT_BREAKER_REASON,
            runningCount=0,
            pendingCount=0,
            updatedAt=utcnow(),
        )
        self._known[primary["id"]]["failed_at"] = now
        self._event(svc, f"(deployment {primary['id']}) deployment failed: tasks failed to start.")
        log.info("%s: circuit breaker tripped on %s (rollback=%s)", svc.name, primary["id"], rollback)
        target = next((d for d in deps if d is not primary and d["rolloutState"] == "COMPLETED"), None)
        if not rollback or target is None:
            return deps
        primary["status"] = "ACTIVE"
        svc.task_definition = target["taskDefinition"]
        new = self._new_deployment(svc, target["taskDefinition"], now)
        self._event(svc, f"(deployment {primary['id']}) rolling back to deployment {target['id']}.")
        log.info("%s: rolling back to %s", svc.name, target["taskDefinition"].rsplit("/", 1)[-1])
        return [new] + deps

    # helpers ---------------------------------------------------------------------------
    def _new_deployment(self, svc, td_arn, now, dep_id=None) -> dict:
        dep_id = dep_id or _new_id()
        self._known[dep_id] = {"started": now, "last_fail": now, "failed_at": None}
        self._event(svc, f"has started {svc.desired_count} tasks: (deployment {dep_id}).")
        return {
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": td_arn,
            "desiredCount": svc.desired_count,
            "pendingCount": svc.desired_count,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": utcnow(),
            "updatedAt": utcnow(),
            "launchType": svc.launch_type,
            "platformVersion": svc.platform_version,
            "platformFamily": "EC2" if svc.launch_type == "EC2" else "FARGATE",
            "networkConfiguration": svc.network_configuration or None,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
        }

    def _complete(self, svc, dep, quiet: bool = False) -> None:
        dep.update(
            rolloutState="COMPLETED",
            rolloutStateReason=f"ECS deployment {dep['id']} completed.",
            runningCount=svc.desired_count,
            pendingCount=0,
            desiredCount=svc.desired_count,
            updatedAt=utcnow(),
        )
        if not quiet:
            log.info("%s: deployment %s COMPLETED on %s", svc.name, dep["id"], dep["taskDefinition"].rsplit("/", 1)[-1])
            self._event(svc, f"(deployment {dep['id']}) deployment completed.")
            self._event(svc, "has reached a steady state.")

    def _expired(self, dep, now) -> bool:
        failed_at = self._known.get(dep["id"], {}).get("failed_at")
        return dep["status"] != "PRIMARY" and failed_at is not None and now - failed_at > self._retention

    def _write(self, svc, deps: list[dict]) -> None:
        svc.deployments = deps
        svc.running_count = sum(d["runningCount"] for d in deps)
        svc.pending_count = sum(d["pendingCount"] for d in deps if d["rolloutState"] != "FAILED")
        self._snapshots[svc.arn] = [dict(d) for d in deps]
        self._sync_targets(svc, deps)

    def _sync_targets(self, svc, deps: list[dict]) -> None:
        """Register one IP target per running task (of every deployment that has some) in the service's
        target groups, as ECS does when a task starts; each new target is `initial` for a grace time."""
        wanted = {}
        for dep in deps:
            if dep.get("rolloutState") == "FAILED":
                continue
            octet = zlib.crc32(dep["id"].encode()) % 250
            wanted.update({f"10.42.{octet}.{10 + i}": i for i in range(min(dep.get("runningCount", 0), 200))})
        backend = self._moto.elbv2_backend()
        now = time.time()
        for lb in svc.load_balancers or []:
            tg = backend.target_groups.get(lb.get("targetGroupArn"))
            if tg is None:
                continue
            stale = [{"Id": t} for t in tg.targets if t not in wanted]
            if stale:
                tg.deregister(stale)
                for t in stale:
                    self._registered_at.pop((tg.arn, t["Id"]), None)
            new = [{"Id": ip, "Port": lb.get("containerPort", tg.port)} for ip in wanted if ip not in tg.targets]
            if new:
                tg.register(new)
                for t in new:
                    self._registered_at[(tg.arn, t["Id"])] = now

    def _event(self, svc, message: str) -> None:
        entry = {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": f"(service {svc.name}) {message}"}
        svc.events = ([entry] + list(svc.events))[:100]

    def _resolve_td(self, ref: str | None) -> str | None:
        if not ref:
            return None
        try:
            return self._moto.ecs_backend().describe_task_definition(ref).arn
        except Exception:
            return None

    def _tag_of(self, td_arn: str) -> str | None:
        try:
            td = self._moto.ecs_backend().describe_task_definition(td_arn)
        except Exception:
            return None
        containers = td.container_definitions
        main = next(
            (c for c in containers if c.get("name") == CONTAINER_NAME), containers[0] if containers else {}
        )
        return self._resolver.tag_of(main.get("image"))
