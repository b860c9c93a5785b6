"""Two processes taking over the same stale ``.running`` lock, many rounds: never two owners."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import time

from stvfm.experiments import schedule as reproduce_module

ROUNDS = 60


def _taker(folder, rounds, start, done, results) -> None:
    """Claim the run each round; slow down after reading the dead owner, where the old race opened."""
    real_dead_here = reproduce_module._dead_here
    reproduce_module._dead_here = lambda owner: time.sleep(0.003) or real_dead_here(owner)
    for _ in range(rounds):
        start.wait()
        lock, _ = reproduce_module._claim(folder)
        results.put(lock is not None)
        done.wait()


def test_two_takers_of_a_stale_lock_never_both_own_the_run(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = f"{socket.gethostname()}:{dead.stdout.strip()}"
    lock = tmp_path / reproduce_module.LOCK_NAME
    context = multiprocessing.get_context("fork")
    start, done, results = context.Barrier(3), context.Barrier(3), context.Queue()
    takers = [context.Process(target=_taker, args=(tmp_path, ROUNDS, start, done, results)) for _ in range(2)]
    for taker in takers:
        taker.start()
    owners_per_round = []
    try:
        for _ in range(ROUNDS):
            lock.write_text(stale)
            start.wait(timeout=30)
            owners_per_round.append(sum(results.get(timeout=30) for _ in takers))
            done.wait(timeout=30)
            lock.unlink(missing_ok=True)
    finally:
        for taker in takers:
            taker.join(timeout=30)
            if taker.is_alive():
                taker.kill()
    assert owners_per_round == [1] * ROUNDS
