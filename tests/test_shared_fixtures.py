"""A missing published fixture skips in a user's clone and fails under CI."""

import pytest
from tests.conftest import shared_fixture


def test_a_missing_fixture_skips_without_ci_and_fails_with_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-fixture.pt not present"):
        shared_fixture("no-such-fixture.pt")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        shared_fixture("no-such-fixture.pt")
