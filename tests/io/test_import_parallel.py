"""Files prepared by a second process import exactly as files prepared in one.

The worker and this process take files in turn (``_Claims``); the tests make this process
take the last file, so that parts of both meet. That a whole import writes the same rows either way is `test_import_equivalence.py`'s,
which runs in both modes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import safeground.io.importer as importer
from safeground.io.importer import ImportFailed, import_many
from tests.io.conftest import ACCIDENTS, counts, mapping

CSV_HEAD = "lon,lat,kind,year,place\n"


def write(path: Path, *lines: str) -> Path:
    path.write_text(CSV_HEAD + "".join(lines))
    return path


@pytest.fixture
def last_here(monkeypatch):
    """This process prepares the last of three files, the worker the first two: the worker
    dawdles over the second, and this process takes a file only when the last is next."""
    real_take, real_prepare = importer._Claims.take, importer._Preparer.prepare
    here = os.getpid()

    def take(claims):
        if os.getpid() == here and claims.next.value != claims.count - 1:
            return None
        return real_take(claims)

    def prepare(preparer, index, path, seen):
        if os.getpid() != here and index == 1:
            time.sleep(0.3)  # this process takes the last file meanwhile
        return real_prepare(preparer, index, path, seen)

    monkeypatch.setattr(importer._Claims, "take", take)
    monkeypatch.setattr(importer._Preparer, "prepare", prepare)


def three_files(folder: Path, last: str) -> list[Path]:
    return [
        write(folder / "a.csv", "46.91,39.95,1,2021,Aghdam\n", "46.92,39.95,2,2021,Tap\n"),
        write(folder / "b.csv", "46.93,39.95,1,2021,Kengerli\n"),
        write(folder / "c.csv", last),
    ]


def test_parts_of_both_processes_are_filed_in_order(reg, tmp_path, last_here, monkeypatch):
    paths = three_files(tmp_path, "46.91,39.95,1,2021,Aghdam\n")  # as a.csv row 1
    here: list[str] = []
    real = importer._Preparer.prepare

    def noting(self, index, path, seen):
        if os.getpid() == pid:
            here.append(path.name)
        return real(self, index, path, seen)

    pid = os.getpid()
    monkeypatch.setattr(importer._Preparer, "prepare", noting)
    parallel = import_many(reg, paths, mapping(ACCIDENTS), "im", parallel=True)
    assert here == ["c.csv"]
    assert parallel.imported == 4
    assert parallel.duplicate_examples == ["a.csv row 1; c.csv row 1"]
    assert [reg.get(i)["place_name"] for i in parallel.record_ids] == [
        "Aghdam",
        "Tap",
        "Kengerli",
        "Aghdam",
    ]
    assert parallel.record_ids == [f"AZ-ACC-2021-{n:05d}" for n in range(1, 5)]


def test_a_key_repeated_across_processes_names_the_first_row(reg, tmp_path, last_here):
    keyed = mapping(ACCIDENTS, key=["place"])
    paths = three_files(tmp_path, "46.99,39.99,2,2022,Tap\n")
    with pytest.raises(ImportFailed) as caught:
        import_many(reg, paths, keyed, "im", parallel=True)
    assert "c.csv row 1: key: source key 'Tap' repeats a.csv row 2" in str(caught.value)
    assert counts(reg)["report"] == 0


def test_an_unreadable_file_fails_in_its_turn_whoever_read_it(reg, tmp_path, last_here):
    paths = three_files(tmp_path, "46.91,39.95,1,2021,Aghdam\n")
    paths[2].write_text("place\nno coordinates\n")  # read by this process
    with pytest.raises(ImportFailed, match=r"c\.csv: .*lon"):
        import_many(reg, paths, mapping(ACCIDENTS), "im", parallel=True)
    paths[0].write_text("place\nno coordinates\n")  # read by the worker, and first
    with pytest.raises(ImportFailed, match=r"a\.csv: .*lon"):
        import_many(reg, paths, mapping(ACCIDENTS), "im", parallel=True)
    assert counts(reg)["report"] == 0


def test_a_failing_worker_stops_the_import_and_says_where(reg, tmp_path, monkeypatch):
    paths = three_files(tmp_path, "46.91,39.95,1,2021,Aghdam\n")
    here = os.getpid()
    real = importer._Preparer.prepare

    def breaks_in_the_worker(self, index, path, seen):
        if os.getpid() != here:
            raise MemoryError("out of memory")
        return real(self, index, path, seen)

    monkeypatch.setattr(importer._Preparer, "prepare", breaks_in_the_worker)
    with pytest.raises(
        RuntimeError, match=r"(?s)preparing file \d failed in the worker.*MemoryError"
    ):
        import_many(reg, paths, mapping(ACCIDENTS), "im", parallel=True)
    assert counts(reg)["report"] == 0
