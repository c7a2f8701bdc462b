"""The hash chain on disk: rotation, tamper detection, crash recovery, concurrency and write failures."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from openshell_authz._audit_chain import (
    GENESIS_HASH,
    chain_files,
    encode_line,
    iter_events,
    line_hash,
    verify_chain,
)
from openshell_server.audit import AuditRecord, AuditWriteError, JsonlChainSink, StdoutSink, open_sink

RecordFactory = Callable[..., AuditRecord]
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_chain_runs_across_rotated_files(rotated_log: Path) -> None:
    files = chain_files(rotated_log)
    assert len(files) >= 4
    # Oldest first: the highest number, down to .1, then the active file.
    assert files[-1] == rotated_log
    assert [int(p.name.rsplit(".", 1)[1]) for p in files[:-1]] == list(range(len(files) - 1, 0, -1))
    assert all(p.stat().st_size <= 6000 for p in files)

    report = verify_chain(files)
    assert report.ok, report
    assert report.lines_checked == 24
    assert report.last_hash == line_hash(_lines(rotated_log)[-1])

    # The first line of each file carries the hash of the last line of the previous file.
    assert json.loads(_lines(files[0])[0])["prev_hash"] == GENESIS_HASH
    for older, newer in itertools.pairwise(files):
        assert json.loads(_lines(newer)[0])["prev_hash"] == line_hash(_lines(older)[-1])
    assert [e["metadata"]["correlation_uid"] for e in iter_events(files)] == [f"c{i}" for i in range(24)]


def test_flipping_any_byte_of_any_line_is_caught_at_that_line(rotated_log: Path) -> None:
    files = chain_files(rotated_log)
    for path in files:
        original = path.read_bytes()
        offset = 0
        for number, line in enumerate(original.splitlines(keepends=True), start=1):
            # Both hash fields, the JSON structure and the payload, sampled densely; XOR 1 keeps most
            # bytes printable ("0" -> "1", "a" -> "`"), the hardest kind of edit to notice.
            for pos in sorted({*range(0, len(line) - 1, 29), 9, 80, 100, len(line) - 2}):
                tampered = bytearray(original)
                tampered[offset + pos] ^= 1
                path.write_bytes(bytes(tampered))
                report = verify_chain(files)
                assert not report.ok
                assert (report.first_bad_file, report.first_bad_line) == (path, number), (pos, report)
            offset += len(line)
        path.write_bytes(original)
    assert verify_chain(files).ok


def test_editing_a_field_consistently_is_caught(rotated_log: Path) -> None:
    """A careful edit (valid JSON, own hash recomputed) still breaks the link to the next line."""
    files = chain_files(rotated_log)
    middle = files[len(files) // 2]
    lines = _lines(middle)
    event = json.loads(lines[1])
    prev = event.pop("prev_hash")
    event.pop("hash")
    event["unmapped"]["outcome"] = "denied"
    lines[1] = encode_line(event, prev)
    middle.write_bytes(b"\n".join(lines) + b"\n")
    report = verify_chain(files)
    assert (report.ok, report.first_bad_file, report.first_bad_line) == (False, middle, 3)
    assert "previous line" in report.reason


@pytest.mark.parametrize(
    ("file_index", "line_index", "bad_file_index", "bad_line"),
    [(2, 2, 2, 3), (2, 3, 3, 1), (-1, 0, -1, 1)],  # a middle line; a file's last line; the newest file's first
)
def test_deleting_a_line_is_caught(
    rotated_log: Path, file_index: int, line_index: int, bad_file_index: int, bad_line: int
) -> None:
    files = chain_files(rotated_log)
    target = files[file_index]
    lines = _lines(target)
    assert len(lines) == 4  # the fixture's geometry, which the expected positions rely on
    del lines[line_index]
    target.write_bytes(b"".join(line + b"\n" for line in lines))
    report = verify_chain(files)
    assert (report.ok, report.first_bad_file, report.first_bad_line) == (False, files[bad_file_index], bad_line)
    assert "removed" in report.reason


def test_inserted_duplicate_line_is_caught(rotated_log: Path) -> None:
    lines = _lines(rotated_log)
    rotated_log.write_bytes(b"\n".join([lines[0], *lines]) + b"\n")
    report = verify_chain(chain_files(rotated_log))
    assert (report.ok, report.first_bad_file, report.first_bad_line) == (False, rotated_log, 2)


def test_missing_oldest_file_needs_an_explicit_start(rotated_log: Path) -> None:
    files = chain_files(rotated_log)
    files[0].unlink()
    remaining = chain_files(rotated_log)
    report = verify_chain(remaining)
    assert (report.ok, report.first_bad_file, report.first_bad_line) == (False, remaining[0], 1)
    assert "older files missing" in report.reason
    assert verify_chain(remaining, start_hash=None).ok
    anchor = json.loads(_lines(remaining[0])[0])["prev_hash"]
    assert verify_chain(remaining, start_hash=anchor).ok


def test_verify_with_nothing_to_check_fails(tmp_path: Path) -> None:
    assert chain_files(tmp_path / "audit.jsonl") == []
    report = verify_chain([])
    assert not report.ok and report.reason == "no audit files to verify"
    report = verify_chain([tmp_path / "missing.jsonl"])
    assert not report.ok and "cannot read" in report.reason


def test_torn_last_line_is_truncated_and_the_chain_continues(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlChainSink(path)
    for i in range(5):
        sink.emit(make_record(correlation_id=f"c{i}"))
    sink.close()
    complete = path.read_bytes()
    # A crash in the middle of the sixth write leaves half a line behind.
    torn = encode_line({"activity_id": 1, "message": "x" * 200}, line_hash(complete.splitlines()[-1]))
    path.write_bytes(complete + torn[: len(torn) // 2])
    report = verify_chain([path])
    assert (report.ok, report.first_bad_line) == (False, 6)
    assert "torn" in report.reason

    sink = JsonlChainSink(path)  # restart
    assert path.read_bytes() == complete
    for i in range(5, 7):
        sink.emit(make_record(correlation_id=f"c{i}"))
    sink.close()
    report = verify_chain([path])
    assert report.ok and report.lines_checked == 7
    assert [e["metadata"]["correlation_uid"] for e in iter_events([path])] == [f"c{i}" for i in range(7)]


def test_restart_resumes_the_chain_even_from_a_rotated_file(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "audit.jsonl"
    for _ in range(2):  # two gateway runs
        sink = JsonlChainSink(path)
        for _ in range(3):
            sink.emit(make_record())
        sink.close()
    # A crash right after a rotation renamed the file, before the new file got its first line.
    path.rename(tmp_path / "audit.jsonl.1")
    path.touch()
    sink = JsonlChainSink(path)
    sink.emit(make_record())
    sink.close()
    report = verify_chain(chain_files(path))
    assert report.ok and report.lines_checked == 7


def test_eight_threads_keep_one_valid_chain(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlChainSink(path, max_bytes=20_000)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for i in range(40):
                sink.emit(make_record(correlation_id=f"t{n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    assert errors == []
    files = chain_files(path)
    assert len(files) > 2  # rotation happened under contention
    report = verify_chain(files)
    assert report.ok and report.lines_checked == 320
    ids = [e["metadata"]["correlation_uid"] for e in iter_events(files)]
    assert sorted(ids) == sorted(f"t{n}-{i}" for n in range(8) for i in range(40))


_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from openshell_server.audit import AuditRecord, JsonlChainSink
sink = JsonlChainSink(Path(sys.argv[1]), max_bytes=int(sys.argv[3]))
for i in range(30):
    sink.emit(AuditRecord(time=datetime.now(UTC), actor_id=sys.argv[2], actor_kind="local",
                          rpc="/openshell.v1.OpenShell/DeleteSandbox", action="DeleteSandbox",
                          outcome="allowed", status_code="OK", correlation_id=f"{sys.argv[2]}-{i}"))
sink.close()
"""


def _run_python(script: str, *args: str, stdout: IO[bytes] | None = None) -> None:
    subprocess.run([sys.executable, "-c", script, *args], env=ENV, stdout=stdout, check=True, timeout=60)


def test_two_processes_share_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, "8000"], env=ENV) for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    files = chain_files(path)
    report = verify_chain(files)
    assert report.ok and report.lines_checked == 60, report
    assert len(files) > 2


def test_open_sink_dash_writes_a_chain_to_stdout(tmp_path: Path) -> None:
    script = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from openshell_server.audit import AuditRecord, StdoutSink, open_sink
sink = open_sink("-", Path(sys.argv[1]))
assert isinstance(sink, StdoutSink)
for i in range(3):
    sink.emit(AuditRecord(time=datetime.now(UTC), actor_id="local", actor_kind="local", rpc="/s.v1.S/CreateX",
                          action="CreateX", outcome="denied", status_code="PERMISSION_DENIED"))
sink.close()
"""
    out = tmp_path / "stdout.jsonl"
    with out.open("wb") as handle:
        _run_python(script, str(tmp_path / "data"), stdout=handle)
    assert not (tmp_path / "data").exists()  # nothing written to the data directory
    report = verify_chain([out])
    assert report.ok and report.lines_checked == 3
    assert [e["status_code"] for e in iter_events([out])] == ["PERMISSION_DENIED"] * 3


def test_open_sink_paths(tmp_path: Path, make_record: RecordFactory) -> None:
    default = open_sink("", tmp_path / "data")
    explicit = open_sink(str(tmp_path / "elsewhere" / "log.jsonl"), tmp_path / "data")
    try:
        assert isinstance(default, JsonlChainSink) and isinstance(explicit, JsonlChainSink)
        assert default.path == tmp_path / "data" / "audit" / "audit.jsonl"
        default.emit(make_record())
        explicit.emit(make_record())
        assert verify_chain(default.files()).lines_checked == 1
        assert verify_chain(explicit.files()).lines_checked == 1
    finally:
        default.close()
        explicit.close()


def test_unwritable_location_raises_audit_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    with pytest.raises(AuditWriteError, match="cannot open audit log"):
        open_sink(str(blocker / "audit.jsonl"), tmp_path)
    with pytest.raises(AuditWriteError):
        open_sink("", blocker)  # data dir is a file


def test_failed_write_raises_and_leaves_a_valid_chain(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlChainSink(path)
    sink.emit(make_record(correlation_id="before"))
    kept = tmp_path / "kept"
    path.rename(kept)
    path.symlink_to("/dev/full")  # the disk is full
    with pytest.raises(AuditWriteError, match=r"audit write to .* failed"):
        sink.emit(make_record(correlation_id="lost"))
    path.unlink()
    kept.rename(path)  # space is back
    sink.emit(make_record(correlation_id="after"))
    sink.close()
    with pytest.raises(AuditWriteError, match="closed"):
        sink.emit(make_record())
    report = verify_chain([path])
    assert report.ok and report.lines_checked == 2
    assert [e["metadata"]["correlation_uid"] for e in iter_events([path])] == ["before", "after"]


def test_stdout_sink_failure_raises(make_record: RecordFactory, tmp_path: Path) -> None:
    with (tmp_path / "x").open("w") as stream:
        sink = StdoutSink(stream)
    with pytest.raises(AuditWriteError):
        sink.emit(make_record())  # the stream is closed
    full = os.fdopen(os.open("/dev/full", os.O_WRONLY), "w")  # a full disk
    try:
        with pytest.raises(AuditWriteError, match="No space left"):
            StdoutSink(full).emit(make_record())
    finally:
        with contextlib.suppress(OSError):  # the unflushable buffer fails again on close
            full.close()


def test_encode_line_refuses_chain_fields() -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        encode_line({"prev_hash": "x"}, GENESIS_HASH)
