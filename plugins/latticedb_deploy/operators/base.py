"""Shared base: every LatticeDB operator knows its environment and image from params."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment


class LatticeDBOperator(BaseOperator):
    """Resolves `environment` (templated, default the run's param) to its typed config."""

    template_fields: tuple[str, ...] = ("environment", "image_uri", "notify")

    def __init__(
        self,
        *,
        environment: str = "{{ params.environment }}",
        image_uri: str = "{{ params.image_uri }}",
        notify: Any = "{{ params.notify }}",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.environment = environment
        self.image_uri = image_uri
        self.notify = notify

    @cached_property
    def env(self) -> Environment:
        from latticedb_deploy.config import load_config

        return load_config().environment(self.environment)

    @property
    def notify_enabled(self) -> bool:
        return str(self.notify).lower() not in ("false", "0", "no", "none")

    def send(self, context: Any, event: str, title: str, fields: dict[str, object]) -> None:
        from latticedb_deploy import notify

        if not self.notify_enabled:
            self.log.info("notify=false: not sending %r", event)
            return
        fields = {"Environment": self.environment, "Image": self.image_uri, "Run": context["run_id"], **fields}
        notify.send(self.env, event, title, fields, notify.run_link(context))
