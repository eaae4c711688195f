#!/usr/bin/env python3
"""Regenerates every PyTorch parity fixture in tests/fixtures/.

    /usr/bin/python3 scripts/make_fixtures.py

Runs scripts/fixtures_engine.py (ops, losses, optimizers, models) and, when it exists,
scripts/fixtures_data.py, each with this interpreter; stops at the first failure. The output is
deterministic (fixed seeds), so regenerating must leave `git status` clean unless a script or
the PyTorch version changed.
"""
import os
import subprocess
import sys

SCRIPTS = ["fixtures_engine.py", "fixtures_data.py"]
LIMIT = 2 * 1024 * 1024  # the committed fixtures stay under 2 MiB in total


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(os.path.dirname(here), "tests", "fixtures")
    for name in SCRIPTS:
        path = os.path.join(here, name)
        if not os.path.exists(path):
            print(f"[make_fixtures] {name} not present, skipped")
            continue
        print(f"[make_fixtures] running {name}")
        rc = subprocess.call([sys.executable, path], cwd=os.path.dirname(here))
        if rc != 0:
            print(f"[make_fixtures] {name} failed with exit status {rc}", file=sys.stderr)
            return rc
    total = sum(os.path.getsize(os.path.join(d, f))
                for d, _, files in os.walk(fixtures) for f in files)
    print(f"[make_fixtures] tests/fixtures holds {total} bytes (limit {LIMIT})")
    if total > LIMIT:
        print("[make_fixtures] fixtures exceed the 2 MiB budget; make the cases smaller",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
