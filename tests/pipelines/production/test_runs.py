"""What a run records about itself: the trigger from the deployment that started it."""

from __future__ import annotations

import pytest

from pipelines.production.runs import trigger_of


@pytest.mark.parametrize(
    ("deployment", "trigger"),
    [
        (None, "cli"),
        ("", "cli"),
        ("nightly-catalog", "nightly"),
        ("csv-upload", "upload"),
        ("other", "deployment"),
    ],
)
def test_the_trigger_names_what_started_the_run(deployment: str | None, trigger: str) -> None:
    assert trigger_of(deployment) == trigger
