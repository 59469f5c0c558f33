#!/usr/bin/env python3
"""Builds the fixed input of the instruction-count benchmark (docs/benchmarks.md).

120 texts of about 22 KB, each the concatenation of consecutive ordinary texts of
eval/corpus/benign.jsonl *as it was at commit c711ffb* (its last change), so the input never
changes when the corpus grows and before/after runs of any two commits read the same bytes.
Prints JSONL (`{"text": ...}`) for `tollgate scan --jsonl`.

    python3 tests/bench/scan_input.py > /tmp/scan_in.jsonl
"""

import json
import subprocess
import sys

REVISION = "c711ffb"
TEXTS = 120
TEXT_BYTES = 22_000


def main() -> None:
    raw = subprocess.run(
        ["git", "show", f"{REVISION}:eval/corpus/benign.jsonl"],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    rows = [json.loads(line)["text"] for line in raw.split("\n") if line.strip()]
    out = sys.stdout
    made = 0
    chunk: list[str] = []
    size = 0
    for text in rows:
        chunk.append(text)
        size += len(text.encode("utf-8")) + 2
        if size >= TEXT_BYTES:
            out.write(json.dumps({"text": "\n\n".join(chunk)}, ensure_ascii=False) + "\n")
            made += 1
            chunk, size = [], 0
            if made == TEXTS:
                break
    if made < TEXTS:
        sys.exit(f"only {made} texts of {TEXT_BYTES} bytes in {REVISION}'s benign.jsonl")


if __name__ == "__main__":
    main()
