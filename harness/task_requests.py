"""Counting the requests tasks make to their supervisor (XCom reads and writes, connections, state
changes), by message type, for the benchmarks: under `dag.test()` each is a call into Airflow's
in-process execution API; in a deployed Airflow each is a request from the worker to the API server."""

from __future__ import annotations


class TaskRequestCounter:
    """Counts `InProcessSupervisorComms.send` messages by type: `with TaskRequestCounter() as requests:` ...
    `requests.total`, `requests.by_type()`, `requests.xcom_reads[(task_id, key)]`. The messages themselves are unchanged."""

    def __init__(self):
        from collections import Counter

        self.messages: Counter = Counter()
        self.xcom_reads: Counter = Counter()  # (task_id, key) of every XCom read

    def __enter__(self):
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

        self._original = original = InProcessSupervisorComms.send
        messages, xcom_reads = self.messages, self.xcom_reads

        def counted(comms, msg):
            messages[type(msg).__name__] += 1
            if type(msg).__name__.startswith("GetXCom"):
                xcom_reads[(getattr(msg, "task_id", None), getattr(msg, "key", None))] += 1
            return original(comms, msg)

        InProcessSupervisorComms.send = counted
        return self

    def __exit__(self, *exc):
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

        InProcessSupervisorComms.send = self._original

    @property
    def total(self) -> int:
        return sum(self.messages.values())

    def by_type(self) -> dict[str, int]:
        """Message type -> count, the most frequent first."""
        return dict(self.messages.most_common())
