#!/usr/bin/env python
"""The intended-query detection benchmark behind docs/iqd_bench.md: `iqd.bench.main` (its --help says what it scores).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_iqd.py --asr exp/asr-char/final.pt --corpus data/c14k \
        --e2e exp/iqd/e2e --fusion exp/iqd/fusion --independent exp/iqd/independent --cascade exp/iqd/cascade \
        --cache exp/iqd/cache
"""
import sys

from iqd.bench import main

if __name__ == "__main__":
    sys.exit(main())
