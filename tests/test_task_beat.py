"""The cluster's beat (core/task_beat.py): django-q2's monitor touches the supervisor's file as tasks
end, at most once a second, and only when a supervisor asked for beats."""
from __future__ import annotations

import os

from django_q.signals import post_execute

from core import task_beat


def test_a_task_ending_touches_the_named_file_at_most_once_a_second(tmp_path, monkeypatch):
    beat = tmp_path / "beat"
    beat.touch()
    os.utime(beat, (0, 0))
    monkeypatch.setenv(task_beat.ENV, str(beat))
    monkeypatch.setattr(task_beat, "_last_beat", 0.0)
    clock = iter([1000.0, 1000.5, 1001.2])
    monkeypatch.setattr(task_beat.time, "monotonic", lambda: next(clock))

    post_execute.send(sender="django_q", task={"success": True})  # connected by the generations app
    first = task_beat.last_task_ended(beat)
    assert first is not None and first.timestamp() > 0
    os.utime(beat, (0, 0))
    post_execute.send(sender="django_q", task={"success": True})  # half a second later: no beat
    assert task_beat.last_task_ended(beat).timestamp() == 0
    post_execute.send(sender="django_q", task={"success": True})
    assert task_beat.last_task_ended(beat).timestamp() > 0


def test_without_a_supervisor_nothing_is_touched_and_a_missing_file_reads_as_none(tmp_path, monkeypatch):
    monkeypatch.delenv(task_beat.ENV, raising=False)
    monkeypatch.setattr(task_beat, "_last_beat", 0.0)
    post_execute.send(sender="django_q", task={"success": True})
    assert list(tmp_path.iterdir()) == []
    assert task_beat.last_task_ended(tmp_path / "absent") is None


def test_a_beat_that_cannot_be_written_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv(task_beat.ENV, str(tmp_path / "no-such-dir" / "beat"))
    monkeypatch.setattr(task_beat, "_last_beat", 0.0)
    post_execute.send(sender="django_q", task={"success": True})  # no exception reaches the monitor
    assert not (tmp_path / "no-such-dir").exists()
