"""The browser tests skip without Chromium on a developer machine, but never in CI, where they must run."""

from __future__ import annotations

from browser_support import browser_marks


def test_without_chromium_browser_tests_skip_locally_but_not_in_ci(tmp_path):
    missing = str(tmp_path / "no-chromium")
    local = [mark.name for mark in browser_marks(missing, in_ci=False)]
    in_ci = [mark.name for mark in browser_marks(missing, in_ci=True)]
    assert "skip" in local and "skip" not in in_ci  # in CI the test runs and chromium() fails with the reason
    present = tmp_path / "chromium"
    present.write_text("")
    assert "skip" not in [mark.name for mark in browser_marks(str(present), in_ci=False)]
