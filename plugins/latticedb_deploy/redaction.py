"""Secrets out of text that leaves a task process other than through its log.

Airflow masks every secret a task process has seen (connection passwords, sensitive variables) in
its logs, not in what the task writes elsewhere. A failure's message goes to XCom, Slack and the
deployment history as text, so it is masked the same way first.
"""

from __future__ import annotations


def redacted(text: str) -> str:
    """`text` with each secret Airflow's masker knows in this process replaced by `***`."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # another Airflow layout: the text as it is (the log is masked either way)
        return text
    return str(redact(text))
