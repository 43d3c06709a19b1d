#!/usr/bin/env bash
# Run the benchmarks whose printed output docs/performance.rst includes, each writing docs/measured/<name>.txt.
# Usage: benchmarks/measure_all.sh [PYTHON] [NAME...]   (PYTHON: the interpreter of an environment with the
# test extras and, for the aiapy comparisons, aiapy >= 0.11 and JAX; NAMEs: a subset of the benchmarks below)
# Run it on a quiet machine: the ratios are measured in the same run, but the load still shifts them.
set -euo pipefail
cd "$(dirname "$0")"
python="${1:-python}"
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(bench_header_scan bench_psf bench_deconvolve bench_register bench_derotate bench_archive
                                  bench_archive_8gb bench_user_path bench_cluster)
out=../docs/measured
for name in "${names[@]}"; do
    echo "== $name"
    case "$name" in  # the output's name, then the command: bench_archive_8gb is bench_archive on 8.4 GB
        bench_archive_8gb) command=(bench_archive.py --frames 1000) ;;
        *) command=("$name.py") ;;
    esac
    {
        echo "# python benchmarks/${command[*]}   ($(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
        "$python" -c "import sys, importlib.metadata as m; print('# Python', sys.version.split()[0], *(f'{p} {m.version(p)}' for p in ('numpy', 'scipy', 'astropy', 'sunpy', 'aiapy', 'dask')), sep=', ')"
        "$python" "${command[@]}"
    } 2>/dev/null | tee "$out/$name.txt.partial"
    mv "$out/$name.txt.partial" "$out/$name.txt"
done
