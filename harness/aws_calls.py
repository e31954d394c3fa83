"""Counting the AWS calls a process makes, for the benchmarks and the tests that budget them."""

from __future__ import annotations


class AwsCallCounter:
    """Counts the AWS calls this process makes (botocore's `BaseClient._make_api_call`), by service and operation.

    `with AwsCallCounter() as calls:` ... `calls.total`, `calls.by_service()`. The calls themselves are
    unchanged; counting costs a dictionary update each.
    """

    def __init__(self):
        from collections import Counter

        self.calls: Counter = Counter()

    def __enter__(self):
        import botocore.client

        self._original = original = botocore.client.BaseClient._make_api_call
        calls = self.calls

        def counted(client, operation_name, api_params):
            calls[(client.meta.service_model.service_name, operation_name)] += 1
            return original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counted
        return self

    def __exit__(self, *exc):
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def by_service(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (service, _), n in self.calls.items():
            out[service] = out.get(service, 0) + n
        return dict(sorted(out.items()))

    def by_operation(self) -> dict[str, int]:
        """Operation name -> calls (services folded together)."""
        out: dict[str, int] = {}
        for (_, operation), n in self.calls.items():
            out[operation] = out.get(operation, 0) + n
        return out
