"""Posting a journal entry from a service task, and telling the finance system about it."""

from __future__ import annotations

from typing import Any

from domain.journal import AccountMap, entry_as_dict, post
from domain.records import JournalEntry
from engine.services import ServiceCall
from engine.store.inserts import insert_loaded


def announce(call: ServiceCall, entry: JournalEntry) -> None:
    """`journal.posted` to the outbox, keyed by task and entry, so one task may post several."""
    call.execution.emit(
        "journal.posted",
        {"business_key": call.business_key, **entry_as_dict(entry)},
        key=f"{call.task_id}:journal.posted:{entry.source_key}",
    )


def post_entry(call: ServiceCall, accounts: AccountMap, **entry: Any) -> JournalEntry:
    """Post on the command's clock and instance, then announce the entry."""
    journal_entry = post(
        call.session,
        accounts,
        instance_id=call.instance_id,
        posted_at=call.now,
        write=insert_loaded,
        **entry,
    )
    announce(call, journal_entry)
    return journal_entry
