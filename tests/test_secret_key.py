"""The instance secret key: created whole and once however many workers start together, never empty."""

from __future__ import annotations

import threading

import pytest

from webapp.factory import _secret_key


def test_the_secret_key_file_is_created_whole_and_workers_agree(tmp_path):
    keys, barrier = [], threading.Barrier(8)

    def start_worker():
        barrier.wait()
        keys.append(_secret_key(tmp_path))

    workers = [threading.Thread(target=start_worker) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no drafts left behind
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", ["", "\n", "short"])
def test_an_empty_or_short_secret_key_refuses_to_start(tmp_path, content):
    (tmp_path / "secret_key").write_text(content)  # what a crash mid-write used to leave
    with pytest.raises(RuntimeError, match="empty or short secret key.*delete the file"):
        _secret_key(tmp_path)
