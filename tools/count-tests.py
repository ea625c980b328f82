#!/usr/bin/env python3
"""Counts test cases: each TAP line of a GTest program in meson testlog.json
files (a program that died outside its TAP plan is one failure), plus plain
"ok NAME" / "not ok NAME" lines of files given after --plain."""
import json
import re
import sys

passed = failed = skipped = 0
args = sys.argv[1:]
plain = args[args.index("--plain") + 1:] if "--plain" in args else []
logs = args[:args.index("--plain")] if "--plain" in args else args

for path in logs:
    for line in open(path):
        entry = json.loads(line)
        out = (entry.get("stdout") or "").splitlines()
        oks = [l for l in out if re.match(r"^ok \d+", l)]
        skips = [l for l in oks if "# SKIP" in l]
        fails = [l for l in out if re.match(r"^not ok \d+", l)]
        passed += len(oks) - len(skips)
        skipped += len(skips)
        failed += len(fails)
        if entry["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not fails:
            failed += 1
        if entry["result"] == "SKIP" and not oks:
            skipped += 1
for path in plain:
    for line in open(path):
        if line.startswith("ok "):
            passed += 1
        elif line.startswith("not ok "):
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
