"""RunStatus: one enum whose members are the very strings sacred, Omniboard and older records use."""

from __future__ import annotations

import json

import bson

from sem_core import records
from sem_core.run_status import ACTIVE_STATUSES, FAILED_STATUSES, FINISHED_STATUSES, RunStatus

SACRED_WORDS = {"QUEUED", "RUNNING", "COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT", "KILLED", "CANCELLED"}


def test_members_are_the_words_records_hold():
    assert {s.value for s in RunStatus} == SACRED_WORDS
    for status in RunStatus:
        assert status == status.value and str(status) == status.value and f"{status}" == status.value
        assert RunStatus(status.value) is status
        assert status in {status.value} and status.value in {status}  # plain strings from a record match


def test_a_record_written_with_a_member_reads_back_as_the_plain_word(tmp_path):
    records.atomic_write_json(tmp_path / "run.json", {"status": RunStatus.INTERRUPTED})
    assert json.loads((tmp_path / "run.json").read_text()) == {"status": "INTERRUPTED"}
    assert bson.decode(bson.encode({"status": RunStatus.KILLED})) == {"status": "KILLED"}


def test_every_status_is_active_or_finished_and_failed_means_finished_but_not_completed():
    assert set(ACTIVE_STATUSES) | set(FINISHED_STATUSES) == set(RunStatus)
    assert not set(ACTIVE_STATUSES) & set(FINISHED_STATUSES)
    assert set(FAILED_STATUSES) == set(FINISHED_STATUSES) - {RunStatus.COMPLETED}
