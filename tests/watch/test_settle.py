"""Settling: the table's decisions, with a hand-driven clock and made-up stat results and tails."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingester.watch.settle import COMPLETE, COMPRESSED, INCOMPLETE, RETRY, SettleTable, Snapshot, take_snapshot
from ingester.watch.tail import Ending

A = Path("/spool/a.jsonl")
B = Path("/spool/sub/b.jsonl")


class World:
    """Files as the table sees them: a snapshot and an ending per path, and a clock."""

    def __init__(self):
        self.now = 0.0
        self.files: dict[Path, tuple[Snapshot, Ending]] = {}
        self.tail_reads: list[Path] = []

    def write(self, path: Path, size: int, ending: Ending = Ending.STOP) -> None:
        self.files[path] = (Snapshot(size, int(self.now * 1e9)), ending)

    def stat(self, path: Path) -> Snapshot | None:
        return self.files[path][0] if path in self.files else None

    def ending(self, path: Path) -> Ending:
        self.tail_reads.append(path)
        return self.files[path][1]

    def table(self, **kw) -> SettleTable:
        kw = {"settle": 2.0, "incomplete_after": 100.0, "retry_base": 10.0, "retry_max": 35.0, **kw}
        return SettleTable(clock=lambda: self.now, stat=self.stat, ending=self.ending, **kw)


def due(table: SettleTable) -> list[tuple[str, str]]:
    return [(h.path.name, h.why) for h in table.due()]


@pytest.fixture
def world() -> World:
    return World()


def test_ready_after_quiet_period_with_stop(world):
    table = world.table()
    world.write(A, 10, Ending.OPEN)
    table.note(A)
    assert due(table) == []  # first look
    world.now = 3
    assert due(table) == []  # quiet, but no stop
    world.now, _ = 4, world.write(A, 20, Ending.STOP)
    assert due(table) == []  # changed: the quiet period starts again
    world.now = 5.9
    assert due(table) == []
    world.now = 6
    assert due(table) == [("a.jsonl", COMPLETE)]
    assert due(table) == []  # in hand now
    table.finished(A, "ingested")
    table.note(A)  # e.g. an event after the file was read
    for world.now in (10, 13):
        assert due(table) == []  # same snapshot as handed over: not again
    assert table.counts()["pending"] == 0


def test_tail_read_once_per_snapshot(world):
    table = world.table()
    world.write(A, 10, Ending.OPEN)
    table.offer(A, world.stat(A))
    for world.now in (2, 3, 4, 5):
        assert due(table) == []
    assert world.tail_reads == [A]
    world.write(A, 11, Ending.OPEN)
    for world.now in (6, 8, 9):
        due(table)
    assert world.tail_reads == [A, A]
    assert table.counts()["without_stop"] == 1


def test_event_restarts_quiet_period(world):
    table = world.table()
    world.write(A, 10)
    table.offer(A, world.stat(A))
    world.now = 1.5
    table.note(A)  # an event is evidence of a write even if the (cached) stat did not change
    world.now = 2.5
    assert due(table) == []
    world.now = 3.5
    assert due(table) == [("a.jsonl", COMPLETE)]


def test_quiet_period_counts_from_the_event_not_the_first_look(world):
    table = world.table()
    world.write(A, 10)
    table.note(A)  # at 0
    world.now = 0.1  # the first look, one tick later
    assert due(table) == []
    world.now = 2.0
    assert due(table) == [("a.jsonl", COMPLETE)]  # settle 2 s after the event, not after the look
    other = A.with_name("b.jsonl")
    world.write(other, 10)
    table.offer(other, world.stat(other))  # found by a scan: no event dates the change
    world.now = 3.9
    assert due(table) == []
    world.now = 4.0
    assert due(table) == [("b.jsonl", COMPLETE)]


def test_compressed_is_handed_over_once_quiet(world):
    table = world.table()
    world.write(A, 10, Ending.COMPRESSED)
    table.offer(A, world.stat(A))
    world.now = 2
    assert due(table) == [("a.jsonl", COMPRESSED)]


def test_incomplete_after_quiet_for_long(world):
    table = world.table(incomplete_after=50)
    world.write(A, 10, Ending.OPEN)
    table.offer(A, world.stat(A))
    world.now = 49
    assert due(table) == []
    world.now = 50
    assert due(table) == [("a.jsonl", INCOMPLETE)]
    table.finished(A, "incomplete")
    table.note(A)
    for world.now in (60, 200, 300):
        assert due(table) == []  # reported once
    world.write(A, 20, Ending.OPEN)
    table.note(A)
    world.now = 349
    assert due(table) == []
    world.now = 350
    assert due(table) == [("a.jsonl", INCOMPLETE)]  # changed, then quiet for long again (from the event)


def test_failed_backs_off_doubling_up_to_the_cap(world):
    table = world.table()
    world.write(A, 10)
    table.offer(A, world.stat(A))
    world.now = 2
    assert due(table) == [("a.jsonl", COMPLETE)]
    delays = []
    for _ in range(4):
        delay = table.finished(A, "failed")
        delays.append(delay)
        world.now += delay - 0.01
        assert due(table) == []
        world.now += 0.01
        assert due(table) == [("a.jsonl", RETRY)]
    assert delays == [10, 20, 35, 35]
    assert table.finished(A, "ingested") is None
    world.now += 1000
    assert due(table) == []
    assert table.counts()["retrying"] == 0


def test_change_drops_the_backoff(world):
    table = world.table()
    world.write(A, 10)
    table.offer(A, world.stat(A))
    world.now = 2
    due(table)
    table.finished(A, "failed")
    world.now = 3
    assert table.offer(A, world.stat(A)) is False  # unchanged: waits for its retry
    world.write(A, 20)
    assert table.offer(A, world.stat(A)) is True
    world.now = 5
    assert due(table) == [("a.jsonl", COMPLETE)]  # no waiting for the 10 s backoff
    assert table.finished(A, "failed") == 10  # a fresh backoff


def test_offer_skips_known_snapshots(world):
    table = world.table()
    world.write(A, 10)
    assert table.offer(A, world.stat(A)) is True
    assert table.offer(A, world.stat(A)) is False  # already pending
    world.now = 2
    due(table)
    assert table.offer(A, world.stat(A)) is False  # in hand
    table.finished(A, "unchanged")
    assert table.offer(A, world.stat(A)) is False  # done
    world.write(A, 11)
    assert table.offer(A, world.stat(A)) is True


def test_gone_files_are_dropped(world):
    table = world.table()
    world.write(A, 10)
    world.write(B, 10)
    table.note(A)
    table.note(B)
    del world.files[A]
    due(table)
    assert table.counts()["pending"] == 1
    table.forget_under(Path("/spool/sub"))
    assert table.counts()["pending"] == 0


def test_retain_forgets_what_a_scan_did_not_see(world):
    table = world.table()
    for path in (A, B):
        world.write(path, 10)
        table.offer(path, world.stat(path))
    world.now = 2
    due(table)
    table.finished(A, "ingested")
    table.finished(B, "failed")
    world.now = 3
    table.retain([], since=3)
    assert table.counts() == {"pending": 0, "without_stop": 0, "in_hand": 0, "retrying": 0, "done": 0}


def test_retain_keeps_what_was_done_during_the_scan(world):
    table = world.table()
    world.write(A, 10)
    table.offer(A, world.stat(A))
    world.now = 2
    due(table)
    table.finished(A, "ingested")
    table.retain([], since=1)  # the scan began before A was done: it may simply have missed it
    assert table.counts()["done"] == 1


def test_take_snapshot(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"abc")
    snapshot = take_snapshot(path)
    assert snapshot == Snapshot(3, path.stat().st_mtime_ns)
    assert take_snapshot(tmp_path) is None
    assert take_snapshot(tmp_path / "gone") is None


def test_withdraw_forgets_an_in_hand_file(world):
    table = world.table()
    world.write(A, 10)
    table.offer(A, world.stat(A))
    world.now = 2
    assert due(table) == [("a.jsonl", COMPLETE)]
    table.withdraw(A)
    assert table.finished(A, "failed") is None  # no longer in hand: nothing to retry
    assert table.counts() == {"pending": 0, "without_stop": 0, "in_hand": 0, "retrying": 0, "done": 0}
