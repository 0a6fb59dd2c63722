"""Hash cost: wall time and CPU of one Argon2id hash, per parameter set.

Compares argon2-cffi's default (what chatsio inherited until issue 15) with
the equivalent configurations of OWASP's Password Storage Cheat Sheet, one of
which chatsio uses (``chatsio/services/passwords.py``). Each set is hashed
``--rounds`` times in this process, one at a time; CPU is this process's.

    .venv/bin/python bench/hash_cost.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from argon2 import PasswordHasher

from chatsio.services.passwords import ARGON2_PARAMETERS

# name: (memory KiB, passes, lanes)
PARAMETER_SETS = {
    "argon2-cffi default": (65536, 3, 4),
    "OWASP 46 MiB, t=1": (47104, 1, 1),
    "OWASP 19 MiB, t=2": (19456, 2, 1),
    "OWASP 12 MiB, t=3": (12288, 3, 1),
    "OWASP 9 MiB, t=4": (9216, 4, 1),
    "OWASP 7 MiB, t=5": (7168, 5, 1),
}


def measure(hasher: PasswordHasher, rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one hash."""
    hasher.hash("warm up")
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        hasher.hash("correct horse battery staple")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    chosen = (
        ARGON2_PARAMETERS["memory_cost"],
        ARGON2_PARAMETERS["time_cost"],
        ARGON2_PARAMETERS["parallelism"],
    )
    for name, (memory, passes, lanes) in PARAMETER_SETS.items():
        hasher = PasswordHasher(memory_cost=memory, time_cost=passes, parallelism=lanes)
        wall, cpu = measure(hasher, args.rounds)
        mark = "  <- chatsio" if (memory, passes, lanes) == chosen else ""
        print(
            f"{name:22} m={memory:>5} KiB t={passes} p={lanes}: "
            f"wall {wall * 1000:6.1f} ms, CPU {cpu * 1000:6.1f} ms{mark}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
