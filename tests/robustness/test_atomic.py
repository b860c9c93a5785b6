"""``atomic_path``: a writer SIGKILLed at any moment leaves the target absent or complete, never torn.

A child process rewrites one ~1.6 MB target through ``atomic_path`` in a loop, each version
self-checking (a header naming the version and the payload length, then a payload derived from
the version, then a trailer). We kill it at random moments, including during the very first
write, and check what a reader would find.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from robust_helpers import child_env

from stvfm.atomic import atomic_path, write_json_atomic, write_text_atomic

WRITER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    from stvfm.atomic import atomic_path

    target = Path(sys.argv[1])
    version = 0
    while True:
        payload = hashlib.sha256(str(version).encode()).digest() * 50_000  # 1.6 MB
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(f"v{version} {len(payload)}\\n".encode())
                for start in range(0, len(payload), 65536):  # many small writes: a wide window to be killed in
                    handle.write(payload[start:start + 65536])
                    if version == 0:
                        time.sleep(0.004)  # a slow first write (~0.1 s), so it can surely be killed in mid-write
                handle.write(b"END\\n")
        version += 1
    """
)


def _check_complete(target: Path) -> int:
    data = target.read_bytes()
    header, _, rest = data.partition(b"\n")
    name, length = header.decode().split()
    version = int(name[1:])
    assert len(rest) == int(length) + 4 and rest.endswith(b"END\n"), f"torn file, version {version}"
    assert rest[:-4] == hashlib.sha256(str(version).encode()).digest() * 50_000
    return version


def test_sigkill_never_leaves_a_torn_target(tmp_path):
    rng = random.Random(1234)
    versions = []
    for round_ in range(6):
        target = tmp_path / f"round{round_}" / "result.bin"
        target.parent.mkdir()
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=child_env())
        try:
            if round_ == 0:  # kill as soon as the first temp file appears: the target must stay absent
                deadline = time.monotonic() + 30
                while not list(target.parent.glob(".result.bin.*.tmp")) and time.monotonic() < deadline:
                    time.sleep(0.001)
            else:
                deadline = time.monotonic() + 30
                while not target.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.4))
            assert child.poll() is None, "writer died on its own"
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        leftovers = [p.name for p in target.parent.iterdir() if p != target]
        # a killed writer may leave its temp file, but only ever under the hidden temp name
        assert all(name.startswith(".result.bin.") and name.endswith(".tmp") for name in leftovers), leftovers
        if round_ == 0:
            assert not target.exists(), "the target appeared before any write finished"
        else:
            assert target.exists()
            versions.append(_check_complete(target))
    assert versions and all(version >= 0 for version in versions)


def test_an_exception_inside_leaves_the_old_target_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"rmse": 1.0})
    try:
        with atomic_path(target) as tmp:
            tmp.write_text('{"rmse": 2.')  # half a file, then the writer fails
            raise RuntimeError("disk on fire")
    except RuntimeError:
        pass
    assert json.loads(target.read_text()) == {"rmse": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_outputs_get_the_usual_permissions_not_mkstemps_0600(tmp_path):

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = write_text_atomic(tmp_path / "atomic.txt", "x")
    assert os.stat(written).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_rename_is_made_durable_by_syncing_the_folder(tmp_path, monkeypatch):
    synced_kinds = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        synced_kinds.append("folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_json_atomic(tmp_path / "metrics.json", {"rmse": 1.0})
    assert synced_kinds == ["file", "folder"]  # the data first, then the rename
