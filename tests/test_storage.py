"""The storage interface, run against every backend in storage.BACKENDS: a backend added later (a shared one
for several hosts) passes the same tests."""
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from storage import BACKENDS, make_storage
from storage.base import MissingChunk, StorageConfigError, UploadNotFound, UploadTooLarge, thumbnail_url

KEY = (7, 1530156149132)
SERVER = str(Path(__file__).resolve().parent.parent / "server.py")


@pytest.fixture(params=sorted(BACKENDS))
def storage(request, settings):
    settings["storage"]["backend"] = request.param
    return make_storage(settings)


def stage(storage, key, index, data):
    writer = storage.open_chunk(key, index)
    writer.write(data)
    assert writer.commit()


def joined(storage, key, count, max_bytes=10**9):
    out = io.BytesIO()
    storage.assemble(key, count, out, max_bytes)
    return out.getvalue()


# ---- finished files ----

def test_store_open_delete(storage):
    url = storage.url_for("20180628140645880613abcdef.jpg")
    assert url == "statics/zhugeleida/imgs/qiyeweixin/product/20180628140645880613abcdef.jpg"
    storage.store(url, b"picture")
    storage.store(thumbnail_url(url), b"thumb")
    with storage.open(url) as f:
        assert f.read() == b"picture"
    assert sorted(u for u, _ in storage.list_pictures()) == sorted([url, thumbnail_url(url)])
    storage.delete(url)  # the thumbnail goes with it
    assert storage.list_pictures() == []
    with pytest.raises(FileNotFoundError):
        storage.open(url)
    storage.delete(url)  # already gone: fine


def test_store_replaces_and_leaves_no_temporary_file(storage):
    url = storage.url_for("a.png")
    storage.store(url, b"first")
    storage.store(url, b"second, longer")
    with storage.open(url) as f:
        assert f.read() == b"second, longer"
    assert [u for u, _ in storage.list_pictures()] == [url]  # no temporary file left beside it


@pytest.mark.parametrize("url", ["statics/../data/x.db", "statics/../../etc/passwd", "data/x.db", "/etc/passwd",
                                 "statics/"])
def test_urls_outside_the_root_name_nothing(storage, url):
    with pytest.raises(FileNotFoundError):
        storage.open(url)
    with pytest.raises(FileNotFoundError):
        storage.store(url, b"x")
    storage.delete(url)  # nothing to do, no error


def test_thumbnail_url():
    assert thumbnail_url("statics/a/b.jpg") == "statics/a/b_thumb.jpg"


# ---- staged uploads ----

def test_chunks_join_in_index_order(storage):
    for index in (2, 0, 1):
        stage(storage, KEY, index, f"<{index}>".encode())
    assert storage.staged_chunks(KEY) == {0: 3, 1: 3, 2: 3}
    assert joined(storage, KEY, 3) == b"<0><1><2>"
    assert joined(storage, KEY, 2) == b"<0><1>"


def test_a_chunk_is_invisible_until_committed_and_replaced_by_a_resend(storage):
    writer = storage.open_chunk(KEY, 0)
    writer.write(b"half")
    assert storage.staged_chunks(KEY) == {}
    assert writer.commit()
    stage(storage, KEY, 0, b"again, whole")
    assert joined(storage, KEY, 1) == b"again, whole"


def test_aborted_chunk_leaves_nothing(storage):
    writer = storage.open_chunk(KEY, 0)
    writer.write(b"partial")
    writer.abort()
    writer.abort()  # twice is fine
    assert not writer.commit()  # and it cannot be committed afterwards
    assert storage.staged_chunks(KEY) == {} and storage.open_uploads(KEY[0]) == set()
    with pytest.raises(UploadNotFound):
        joined(storage, KEY, 1)


def test_a_write_after_an_abort_is_dropped(storage):
    writer = storage.open_chunk(KEY, 0)
    writer.write(b"x" * 1000)
    writer.abort()
    writer.write(b"late")  # a piece that was already on its way
    assert writer.commit() is False
    assert storage.staged_chunks(KEY) == {} and storage.open_uploads(KEY[0]) == set()


class StalledFile:
    """Stands in for a chunk's open file: write() stops half-way until the test lets it go on."""

    def __init__(self, real):
        self.real, self.writing, self.go_on = real, threading.Event(), threading.Event()

    def write(self, data):
        self.writing.set()
        self.go_on.wait(10)
        return self.real.write(data)

    def close(self):
        self.real.close()


def test_the_local_writers_abort_waits_for_a_write_in_progress(settings):
    """abort() comes from a connection-close callback while an executor thread writes: it must wait for that
    write, not close the file under it (the writer would then fail, or write into a removed file)."""
    settings["storage"]["backend"] = "local"
    storage = make_storage(settings)
    writer = storage.open_chunk(KEY, 0)
    stalled = writer._file = StalledFile(writer._file)
    errors = []

    def write():
        try:
            writer.write(b"x" * 100_000)
        except Exception as error:  # noqa: BLE001 - any failure of the write is what this test looks for
            errors.append(error)

    writing, aborting = threading.Thread(target=write), threading.Thread(target=writer.abort)
    writing.start()
    assert stalled.writing.wait(10)
    aborting.start()
    aborting.join(0.5)  # it cannot finish while the write holds the lock; without the lock it would by now
    still_waiting = aborting.is_alive()
    stalled.go_on.set()
    writing.join()
    aborting.join()
    assert still_waiting and errors == []
    assert storage.staged_chunks(KEY) == {} and storage.open_uploads(KEY[0]) == set()


def leftovers(storage):
    """Files under staging that are no committed chunk (local backend; other backends: nothing to see)."""
    if not hasattr(storage, "staging"):
        return []
    return [p for p in storage.staging.rglob("*") if p.is_file() and not p.name.endswith(".chunk")]


def test_a_chunk_named_after_its_bytes_is_placed_on_commit(storage):
    """A form body may name its upload only after img_data: the chunk is written unplaced, then placed."""
    writer = storage.open_chunk(None, None)
    writer.write(b"bytes first, ")
    writer.write(b"then the name")
    assert storage.open_uploads(KEY[0]) == set()
    writer.place(KEY, 1)
    assert writer.commit()
    assert storage.staged_chunks(KEY) == {1: 26} and storage.open_uploads(KEY[0]) == {KEY[1]}
    stage(storage, KEY, 0, b"<0>")
    assert joined(storage, KEY, 2) == b"<0>bytes first, then the name"
    assert leftovers(storage) == []


@pytest.mark.parametrize("placed", [False, True])
def test_an_aborted_unplaced_chunk_leaves_nothing(storage, placed):
    writer = storage.open_chunk(None, None)
    writer.write(b"partial")
    if placed:
        writer.place(KEY, 0)
    writer.abort()
    assert not writer.commit()
    assert storage.open_uploads(KEY[0]) == set() and leftovers(storage) == []


def test_expire_drops_unplaced_chunks_a_crash_left(storage):
    writer = storage.open_chunk(None, None)  # never committed nor aborted: the process died
    writer.write(b"orphan")
    assert storage.expire(3600) == 0 and len(leftovers(storage)) == (1 if hasattr(storage, "staging") else 0)
    storage.expire(0)
    assert leftovers(storage) == []


def test_missing_chunk_is_named(storage):
    stage(storage, KEY, 0, b"a")
    stage(storage, KEY, 2, b"c")
    with pytest.raises(MissingChunk) as caught:
        joined(storage, KEY, 3)
    assert caught.value.index == 1


def test_assemble_refuses_more_than_the_limit(storage):
    stage(storage, KEY, 0, b"12345")
    stage(storage, KEY, 1, b"678")
    assert joined(storage, KEY, 2, max_bytes=8) == b"12345678"
    with pytest.raises(UploadTooLarge):
        joined(storage, KEY, 2, max_bytes=7)


def test_uploads_are_per_user(storage):
    stage(storage, (1, 100), 0, b"first user's")
    stage(storage, (2, 100), 0, b"second user's")
    stage(storage, (1, 200), 0, b"another")
    assert storage.open_uploads(1) == {100, 200} and storage.open_uploads(2) == {100}
    assert joined(storage, (2, 100), 1) == b"second user's"
    with pytest.raises(UploadNotFound):
        joined(storage, (3, 100), 1)


def test_abort_drops_the_whole_upload(storage):
    stage(storage, KEY, 0, b"a")
    stage(storage, KEY, 1, b"b")
    storage.abort(KEY)
    storage.abort(KEY)
    assert storage.staged_chunks(KEY) == {} and storage.open_uploads(KEY[0]) == set()


def test_expire_drops_old_uploads_only(storage):
    stage(storage, KEY, 0, b"a")
    assert storage.expire(3600) == 0
    assert storage.staged_chunks(KEY) == {0: 1}
    assert storage.expire(0) == 1
    assert storage.open_uploads(KEY[0]) == set()


def test_scratch_file_is_gone_when_closed(storage):
    before = set(storage.staging.rglob("*")) if hasattr(storage, "staging") else None
    with storage.scratch_file() as f:
        f.write(b"joined chunks")
        f.seek(0)
        assert f.read() == b"joined chunks"
    if before is not None:
        assert set(storage.staging.rglob("*")) == before


def test_local_staging_inside_the_root_is_refused(settings):
    settings["storage"]["staging"] = settings["storage"]["root"] + "/uploads"
    with pytest.raises(StorageConfigError, match="separate folders"):
        make_storage(settings)


def test_a_storage_configuration_error_stops_the_service_with_one_line(tmp_path):
    settings_file = tmp_path / "config.yaml"
    settings_file.write_text(yaml.safe_dump({"storage": {"root": str(tmp_path / "statics"),
                                                         "staging": str(tmp_path / "statics" / "uploads")},
                                             "database": {"url": f"sqlite:///{tmp_path / 'zgld.db'}"},
                                             "server": {"port": 8698}}))  # in this suite's range
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGLD_")}
    stopped = subprocess.run([sys.executable, SERVER, "--config", str(settings_file)], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 1
    assert stopped.stderr.splitlines() == ["configuration error: storage.staging and storage.root must be separate "
                                           "folders: staged uploads must never be reachable under /statics/"]
