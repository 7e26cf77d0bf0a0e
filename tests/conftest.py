"""Fixtures shared by the test modules."""

from __future__ import annotations

from typing import Tuple

import pytest

from prometheus_helpers import fetch


@pytest.fixture(scope="session")
def prom() -> Tuple[str, str]:
    """The paths of Debian's Prometheus (fetched once, cached); skips naming what is missing."""
    paths, why = fetch()
    if paths is None:
        pytest.skip(why)
    return paths
