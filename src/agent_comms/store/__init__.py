"""The only SQL in the project: migrations, the idempotent bulk insert, dead letters, retention, reads.

Publisher-free components (consumer, backfill, web) reach Postgres through this package alone.
"""

from agent_comms.store.database import Conn, DatabaseUnavailable, connect, connect_with_retry, is_transient
from agent_comms.store.dead_letters import (
    DeadLetter,
    ReplayResult,
    StoredDeadLetter,
    add_dead_letters,
    list_dead_letters,
    replay_dead_letters,
)
from agent_comms.store.messages import (
    InsertResult,
    IsolatedResult,
    Key,
    insert_rows,
    insert_rows_isolating,
    prepare_staging,
)
from agent_comms.store.migrate import migrate
from agent_comms.store.prune import PruneResult, prune
from agent_comms.store.reads import StoredMessage, channel_counts, run_messages
from agent_comms.store.rows import InvalidBody, MessageRow, decode_body, row_from_body, row_from_bytes

__all__ = [
    "Conn",
    "DatabaseUnavailable",
    "DeadLetter",
    "InsertResult",
    "InvalidBody",
    "IsolatedResult",
    "Key",
    "MessageRow",
    "PruneResult",
    "ReplayResult",
    "StoredDeadLetter",
    "StoredMessage",
    "add_dead_letters",
    "channel_counts",
    "connect",
    "connect_with_retry",
    "decode_body",
    "insert_rows",
    "insert_rows_isolating",
    "is_transient",
    "list_dead_letters",
    "migrate",
    "prepare_staging",
    "prune",
    "replay_dead_letters",
    "row_from_body",
    "row_from_bytes",
    "run_messages",
]
