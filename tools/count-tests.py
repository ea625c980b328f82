#!/usr/bin/env python3
"""Counts test cases in a meson testlog.json: each TAP line of a GTest program
is a case; a program that died outside its TAP plan counts as one failure."""
import json
import re
import sys

passed = failed = skipped = 0
for line in open(sys.argv[1]):
    entry = json.loads(line)
    out = entry.get("stdout") or ""
    oks = [l for l in out.splitlines() if re.match(r"^ok \d+", l)]
    skips = [l for l in oks if "# SKIP" in l]
    fails = [l for l in out.splitlines() if re.match(r"^not ok \d+", l)]
    passed += len(oks) - len(skips)
    skipped += len(skips)
    failed += len(fails)
    if entry["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not fails:
        failed += 1
    if entry["result"] == "SKIP" and not oks:
        skipped += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
