"""Timing helpers shared by the benchmarks: wall and CPU time, and a line comparing with the peer."""
import time

import numpy as np


def best(func, repeat=1):
    """Result of ``func()`` and its best wall and CPU (this process, all threads) times over ``repeat`` runs, in s."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, min(walls), min(cpus)


def comparison(label, wall, cpu, peer_wall, peer_cpu, result=None, reference=None, unit="s"):
    """One line: our wall and CPU times, their ratios to the peer's, and the deviation from the peer's result."""
    line = (f"  {label:40s} {wall:7.2f} {unit}  speed-up {peer_wall / wall:5.2f} x   "
            f"(CPU {cpu:6.2f} s, ratio {peer_cpu / cpu:5.2f} x)")
    if result is not None:
        line += f"  max deviation / max {np.abs(result - reference).max() / np.abs(reference).max():.1e}"
    return line
