"""`make bench`: every benchmark in one run, side by side; the tables are printed and saved to
benchmarks/results.md (the README quotes them)."""

from __future__ import annotations

from pathlib import Path

import import_time
import mapped
import per_call
import scan
import token_requests
import triggerer


def main() -> None:
    sections = [
        per_call.main(),
        scan.main(),
        import_time.main(),
        token_requests.main(),
        triggerer.main(),
        mapped.main(),
    ]
    out = Path(__file__).with_name("results.md")
    out.write_text("# Benchmark results (`make bench`)\n" + "\n".join(sections) + "\n")
    print(f"\nSaved to {out}")


if __name__ == "__main__":
    main()
