"""Profile BM25 or Seismic search with Linux perf, numba's compiled kernels named in the report.

perf cannot name code that numba compiled at run time. This script compiles the kernels in its own process (numba's
cache pointed at a new, empty folder, so that their LLVM modules are at hand), writes each compiled function's
address range to /tmp/perf-<pid>.map (perf's map for JIT code), then searches the queries --passes times:

    perf record -F 2000 -o /tmp/perf.data env PYTHONPATH=src python bench/profile_kernels.py \\
        --index /tmp/bench-work/rankstack-pypi-summaries --k 10 --passes 60
    perf report -i /tmp/perf.data --no-children --sort sym --time 50%-100%

(`--time 50%-100%` leaves out the compilation; a function's range runs to the next function's start, so a few
samples may land on the wrong name.) `--seismic bench/out/sparse/pypi-seismic` profiles a Seismic index instead
(bench_sparse.py's, with its queries `--seismic-queries` and `--seismic-knobs`; give --passes 300: its passes are
short). `--dump NAME` also writes the machine code of the functions whose name contains NAME to
/tmp/perf-<pid>-<address>.bin, for `objdump -D -b binary -m i386:x86-64 --adjust-vma=<address>` against the
samples' addresses (`perf script -F ip,sym`).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERIES = HERE.parents[1] / "shared" / "data" / "pypi-summaries" / "queries.msmarco-dev-small.jsonl"


def compiled_functions() -> list[tuple[int, str]]:
    """(address, LLVM name) of every function numba compiled in this process, by address."""
    from numba.core.registry import CPUDispatcher
    found = set()
    for obj in gc.get_objects():
        if not issubclass(type(obj), CPUDispatcher):  # not isinstance: some objects' __class__ raises
            continue
        for cres in obj.overloads.values():
            module = getattr(cres.library, "_final_module", None)
            if module is None:  # loaded from a cache: no module to name its functions
                continue
            for fn in module.functions:
                if not fn.is_declaration:
                    address = cres.library.get_pointer_to_function(fn.name)
                    if address:
                        found.add((address, fn.name))
    return sorted(found)


def _mapping_end(address: int) -> int:
    """End of the memory mapping that holds `address` (/proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return end
    return address


def write_perf_map(dump: str | None = None) -> int:
    """Write /tmp/perf-<pid>.map for the compiled functions (and dump the code of those named like `dump`)."""
    functions = compiled_functions()
    if not functions:
        sys.exit("no compiled numba functions to map: were the kernels loaded from a cache? (NUMBA_CACHE_DIR must "
                 "be new before numba is imported)")
    pid = os.getpid()
    with open(f"/tmp/perf-{pid}.map", "w") as out:
        for (address, name), (following, _) in zip(functions, functions[1:] + [(functions[-1][0] + 4096, "")]):
            size = min(following, _mapping_end(address)) - address  # never past its memory (reading there crashes)
            out.write(f"{address:x} {size:x} {name}\n")
            if dump and dump in name:
                Path(f"/tmp/perf-{pid}-{address:x}.bin").write_bytes(ctypes.string_at(address, size))
    return len(functions)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, help="a rankstack BM25 index")
    p.add_argument("--seismic", type=Path, help="a Seismic index (instead of --index)")
    p.add_argument("--seismic-queries", type=Path, default=HERE / "out" / "sparse" / "pypi-queries-1000.npz")
    p.add_argument("--seismic-knobs", nargs=2, type=float, default=[5, 0.5], metavar=("QUERY_CUT", "HEAP_FACTOR"))
    p.add_argument("--queries", type=Path, default=QUERIES)
    p.add_argument("--num-queries", type=int, default=2000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--passes", type=int, default=60)
    p.add_argument("--dump", help="also write the machine code of the functions whose name contains this")
    args = p.parse_args()
    if (args.index is None) == (args.seismic is None):
        p.error("give one of --index and --seismic")
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-profile-")  # compile here, not load
    import numba
    numba.set_num_threads(1)
    search = seismic_search(args) if args.seismic else bm25_search(args)
    search()  # compile
    print(f"{write_perf_map(args.dump)} compiled functions mapped for perf", file=sys.stderr)
    for _ in range(args.passes):
        search()


def bm25_search(args):
    from collections import Counter

    from rankstack.index.search import InvertedParams
    from rankstack.retrieve.bm25 import BM25

    texts = [json.loads(line)["text"] for line in args.queries.read_text().splitlines()[:args.num_queries]]
    bm25 = BM25(args.index, progress=False)
    bags = [Counter(bm25.analyzer.analyze(t)) for t in texts]
    params = InvertedParams(threads=1)
    return lambda: bm25.index.search(bags, args.k, params)


def seismic_search(args):
    from ab_kernels import seismic_splade_search  # this folder is on sys.path when run as a script

    return seismic_splade_search(args.seismic, args.seismic_queries, *args.seismic_knobs, k=args.k,
                                 num_queries=args.num_queries)

if __name__ == "__main__":
    main()
