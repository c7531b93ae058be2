"""The one door to Temporal: start, signal, update, query, describe, list and reset.

Services call these plain functions and catch the errors below; nothing else in the app speaks
to Temporal or knows its protobuf messages.
"""

from approvals.client.approval import (
    query_state,
    send_signal,
    send_update,
    send_updates,
    start_approval,
)
from approvals.client.campaign import (
    cancel_campaign,
    close_reviews,
    send_review_decisions,
    start_campaign,
)
from approvals.client.connection import (
    DEV_SERVER_ARGS,
    DEV_SERVER_FILE_ARGS,
    NoWorkflow,
    Refused,
    Rejected,
    TasksFailing,
    TemporalError,
    TimedOut,
    Unanswered,
    Unreachable,
    connect,
    reset,
)
from approvals.client.fulfilment import start_fulfilment
from approvals.client.grant import send_grant_action
from approvals.client.health import ping
from approvals.client.runs import (
    FAILING_QUERY,
    RUNNING_QUERY,
    STOPPED_QUERY,
    CloseReason,
    Run,
    RunStatus,
    close_reasons,
    describe,
    describe_all,
    histories,
    listed,
    reset_point,
    retry_stopped,
)
from approvals.client.webhook import start_webhook_delivery

__all__ = [
    "DEV_SERVER_ARGS",
    "DEV_SERVER_FILE_ARGS",
    "FAILING_QUERY",
    "RUNNING_QUERY",
    "STOPPED_QUERY",
    "CloseReason",
    "NoWorkflow",
    "Refused",
    "Rejected",
    "Run",
    "RunStatus",
    "TasksFailing",
    "TemporalError",
    "TimedOut",
    "Unanswered",
    "Unreachable",
    "cancel_campaign",
    "close_reasons",
    "close_reviews",
    "connect",
    "describe",
    "describe_all",
    "histories",
    "listed",
    "ping",
    "query_state",
    "reset",
    "reset_point",
    "retry_stopped",
    "send_review_decisions",
    "send_signal",
    "send_update",
    "send_updates",
    "start_approval",
    "start_webhook_delivery",
    "start_campaign",
    "start_fulfilment",
    "send_grant_action",
]
