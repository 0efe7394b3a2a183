"""Run every benchmark: `python -m bench [--engine-only] [engine options]`."""

from __future__ import annotations

import sys

from bench import bench_engine, bench_o2c, bench_rules


def main(argv: list[str]) -> None:
    engine_only = "--engine-only" in argv
    engine_args = [a for a in argv if a != "--engine-only"]
    if not engine_only:
        print("== rules ==")
        bench_rules.main()
        print()
    print("== engine ==")
    bench_engine.main(engine_args)
    if not engine_only:
        print()
        print("== order to cash straight through (W3) ==")
        bench_o2c.main([])


if __name__ == "__main__":
    main(sys.argv[1:])
