#!/usr/bin/env bash
# Prints which top-level modules of src/ each top-level module names through
# `crate::` (`module -> used modules`, one line a module), then every pair
# that names each other. Read as tests/layers.rs reads src/: test code
# (`#[cfg(test)] mod tests`, `tests.rs`), comments and string literals left
# out, grouped `use crate::{a, b::C}` trees expanded, a name lib.rs
# re-exports followed to its module; lib.rs, main.rs and testing.rs are
# outside the layers.
#
# Usage: tools/module-graph.sh [REV]   (without REV: the working tree)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
tree=$root
if [ $# -gt 0 ]; then
  tree=$(mktemp -d)
  trap 'rm -rf "$tree"' EXIT
  git -C "$root" archive "$1" src | tar -x -C "$tree"
fi
python3 - "$tree/src" <<'PYTHON'
import pathlib, re, sys

src = pathlib.Path(sys.argv[1])
TOKENS = re.compile(r'//[^\n]*|/\*.*?\*/|(?<![\w])b?r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|\'(?:\\.|[^\\\'])\'', re.S)

def code(path):
    text = path.read_text()
    text = text.split("#[cfg(test)]\nmod tests")[0]
    return TOKENS.sub(lambda m: '""' if m.group(0)[0] in 'rb"\'' else " ", text)

def tree(text, at):
    """The paths of the use tree at text[at:], and where it ends."""
    prefix = []
    while True:
        at = len(text) - len(text[at:].lstrip())
        if text.startswith("{", at):
            paths, at = [], at + 1
            while True:
                inner, at = tree(text, at)
                paths += [prefix + [p for p in path if p != "self"] for path in inner]
                at = len(text) - len(text[at:].lstrip())
                if not text.startswith(",", at):
                    return paths, at + text.startswith("}", at)
                at += 1
        name = re.match(r"\w*", text[at:]).group(0)
        if not name:
            return ([prefix] if prefix else []), at
        prefix.append(name)
        at += len(name)
        rest = text[at:].lstrip()
        if not rest.startswith("::"):
            return [prefix], at
        at = len(text) - len(rest) + 2

def crate_paths(text):
    for match in re.finditer(r"(?<![\w:])crate::", text):
        yield from (path[1:] for path in tree(text, match.start())[0] if len(path) > 1)

root_exports = {}
for match in re.finditer(r"pub(?:\(crate\))? use ", code(src / "lib.rs")):
    for path in tree(code(src / "lib.rs"), match.end())[0]:
        path = path[1:] if path[0] == "crate" else path
        root_exports[path[-1]] = path[0]

graph = {}
for path in sorted(src.rglob("*.rs")):
    parts = path.relative_to(src).with_suffix("").parts
    module = parts[0]
    if path.name == "tests.rs" or module in ("lib", "main", "testing"):
        continue
    uses = graph.setdefault(module, set())
    for used in crate_paths(code(path)):
        top = root_exports.get(used[0], used[0])
        if top != module:
            uses.add(top)

for module in sorted(graph):
    print(f"{module} -> {' '.join(sorted(graph[module]))}".rstrip())
two_way = [(a, b) for a in sorted(graph) for b in sorted(graph[a]) if a < b and a in graph.get(b, ())]
print("two-way:", " ".join(f"{a}<->{b}" for a, b in two_way) or "none")
PYTHON
