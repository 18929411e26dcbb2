"""The byte-level targets of ``tools/fuzz --engine raw`` run a few hundred
inputs each, so they cannot rot between long runs (the long runs need
atheris, which tools/setup-env installs; where it has no wheel these tests are skipped)."""
from __future__ import annotations

import random

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (tools/setup-env installs it where "
                    "a wheel exists); the raw fuzz targets need its FuzzedDataProvider")

from tests.fuzz import raw_targets  # noqa: E402 - after the skip

INPUTS = 300
FEWER = {"dsn": 80}   # a DSN is built and parsed by the email package: ~10 ms each


@pytest.mark.parametrize("name", sorted(raw_targets.TARGETS))
def test_raw_target_runs(name, request):
    reason = raw_targets.known_defect(name)
    if reason:
        request.applymarker(pytest.mark.xfail(strict=False, reason=reason))
    target = raw_targets.TARGETS[name]
    rng = random.Random(name)   # the same inputs on every run
    target(b"")
    for _ in range(FEWER.get(name, INPUTS)):
        target(rng.randbytes(rng.randrange(1, 1200)))
