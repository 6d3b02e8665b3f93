"""The embedded broker writes a message whole before any reader can see it."""

from __future__ import annotations

from pathlib import Path

from kombu import Connection


def connect(folder: Path) -> Connection:
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    (folder / "control").mkdir(exist_ok=True)
    return Connection(
        "filesystem://",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
    )


def test_messages_go_through_and_no_partial_file_stays(tmp_path: Path) -> None:
    with connect(tmp_path) as connection:
        assert type(connection.transport).__module__ == "parley.core.brokerfs"
        queue = connection.SimpleQueue("q")
        queue.put({"n": 1})
        queue.put({"n": 2})
        assert not list(tmp_path.glob("*.partial"))
        # Files in the same millisecond sort by a random id, as in kombu.
        assert sorted(queue.get(timeout=1).payload["n"] for _ in range(2)) == [1, 2]
        queue.close()


def test_a_message_still_being_written_is_not_read(tmp_path: Path) -> None:
    with connect(tmp_path) as connection:
        # A queue of its own: kombu keeps declared exchanges per process.
        queue = connection.SimpleQueue("partial")
        # What a writer leaves while it writes: readers must not take it.
        (tmp_path / "1_00000000-0000-0000-0000-000000000000.partial.msg.partial").write_bytes(b"")
        queue.put({"n": 1})
        assert queue.get(timeout=1).payload == {"n": 1}
        assert queue.qsize() == 0
        queue.close()
