"""A missing published fixture skips in a user's clone and fails under CI."""

import pytest
from tests.conftest import shared_fixture


def test_a_missing_fixture_skips_without_ci_and_fails_with_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-fixture.pt not present"):
        shared_fixture("no-such-fixture.pt")
    monkeypatch.setenv("CI", "true")
    # BaseException: a skip escaping here would report this test as skipped, not failed, and so hide
    # the very bug it guards (a missing fixture skipping under CI)
    with pytest.raises(BaseException) as raised:
        shared_fixture("no-such-fixture.pt")
    assert raised.type is pytest.fail.Exception, f"under CI: {raised.type.__name__}: {raised.value}"
    assert "CI is set" in str(raised.value)
