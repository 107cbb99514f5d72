"""What a test does when a service it needs is missing (the test Slurm cluster, Omniboard,
headless Chromium): it skips with the reason, or, with ``SEM_REQUIRE_SERVICES=1`` (tests/run.sh
and CI set it), it fails with the reason - a service that did not come up must not pass as a
skipped test."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE = "SEM_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE) == "1"


def missing_service(reason: str) -> NoReturn:
    """Skip the calling test, or fail it when services are required; ``reason`` says what is
    missing and how to get it."""
    if services_required():
        pytest.fail(f"{reason} [{REQUIRE}=1: a missing service fails the test]", pytrace=False)
    pytest.skip(reason)
