"""The connections board: each worker counts its own connections, and one holding more than its share of the live
workers' connections is told so; slots of workers that died are left out and taken again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoserver.balance import Board, create_board


@pytest.fixture
def board_path() -> Iterator[Path]:
    path = create_board()
    yield path
    path.unlink()


def _with(board: Board, connections: int) -> Board:
    for _ in range(connections):
        board.opened()
    return board


def _worker_that_dies(board: Path, connections: int) -> None:
    """A process that takes a slot, counts connections and dies without freeing it (as a killed worker does)."""
    code = (
        "import os, sys; from pathlib import Path; from geoserver.balance import Board; "
        "b = Board(Path(sys.argv[1])); [b.opened() for _ in range(int(sys.argv[2]))]; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(board), str(connections)], check=True)


def test_a_worker_above_its_share_is_told_and_one_at_its_share_is_not(board_path: Path) -> None:
    busy, idle = _with(Board(board_path), 12), _with(Board(board_path), 4)
    assert busy.over_share() and not idle.over_share()
    for _ in range(3):
        busy.closed()
    assert busy.over_share()  # 9 of 13: the share is 7
    busy.closed()
    busy.closed()
    idle.opened()
    idle.opened()
    assert not busy.over_share() and not idle.over_share()  # 7 and 6 of 13


def test_one_worker_alone_is_never_above_its_share(board_path: Path) -> None:
    assert not _with(Board(board_path), 16).over_share()


def test_a_dead_workers_slot_is_left_out_and_taken_by_the_next_worker(board_path: Path) -> None:
    live, other = _with(Board(board_path), 5), _with(Board(board_path), 4)
    _worker_that_dies(board_path, 0)
    # Counted as a worker, the dead one would make the share 3 of 9, and both live workers close connections.
    assert not live.over_share() and not other.over_share()
    live.opened()
    assert live.over_share()  # 6 of 10 between the two live workers
    live.closed()
    _worker_that_dies(board_path, 7)  # takes the first dead worker's slot: 7 connections that no longer exist
    assert not live.over_share()  # so the share is 6 of 16: no worker is told to close
    replacement = Board(board_path)
    assert replacement.slot == 2  # the dead worker's slot, counting from zero again:
    assert live.over_share()  # 5 of 9 between three workers


def test_a_released_slot_counts_for_nothing(board_path: Path) -> None:
    staying, leaving = _with(Board(board_path), 5), _with(Board(board_path), 5)
    leaving.release()
    assert not staying.over_share()
