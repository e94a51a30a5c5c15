#!/usr/bin/env bash
# The two-task user of docs/plugins.md in every language: lines of code (not blank, not a
# comment or docstring), for the table in docs/plugins.md.
# Usage: bench/line_counts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import re

FILES = [
    ("Rust (SDK)", "plugins/examples/two_tasks/src/lib.rs"),
    ("Python (SDK)", "plugins/examples/python-sdk/visitor.py"),
    ("JavaScript (SDK)", "plugins/examples/js-sdk/visitor.js"),
    ("C (SDK)", "plugins/examples/c-sdk/visitor.c"),
    ("Locust", "docs/examples/two-task/locustfile.py"),
    ("k6", "docs/examples/two-task/k6.js"),
]


def code_lines(path):
    python = path.endswith(".py")
    comment = re.compile(r"^(#|\"\"\".*\"\"\"$)" if python else r"^(//|/\*|\*)")
    return sum(1 for line in open(path) if line.strip() and not comment.match(line.strip()))


print(f"| {'language':<18} | {'file':<42} | lines |")
print(f"|{'-' * 20}|{'-' * 44}|-------|")
for label, path in FILES:
    print(f"| {label:<18} | {'`' + path + '`':<42} | {code_lines(path):>5} |")
PY
