#!/usr/bin/env python3
"""Build the target of every `cargo run` command in the docs with its exact
flags (package, features, example), so that each command runs as written.
`--release` commands are built in the dev profile: the profile changes no
feature or target. tests/readme_commands.rs checks the same commands
against the manifests in the test suite; this script compiles them."""
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def documents():
    yield os.path.join(ROOT, "README.md")
    for d in ["docs", "examples", "crates/keycard-redis/examples"]:
        full = os.path.join(ROOT, d)
        if os.path.isdir(full):
            for name in sorted(os.listdir(full)):
                if name.endswith((".md", ".rs")):
                    yield os.path.join(full, name)
    for c in sorted(os.listdir(os.path.join(ROOT, "crates"))):
        readme = os.path.join(ROOT, "crates", c, "README.md")
        if os.path.exists(readme):
            yield readme


def commands():
    for path in documents():
        with open(path, encoding="utf-8") as f:
            for line in f:
                for m in re.finditer(r"cargo run([^`#|)]*)", line):
                    args = m.group(1).split(" -- ")[0].split()
                    package, features, example = "keycard", [], None
                    it = iter(args)
                    for a in it:
                        if a in ("-p", "--package"):
                            package = next(it, package)
                        elif a in ("--features", "-F"):
                            features += [x for x in next(it, "").split(",") if x]
                        elif a == "--example":
                            example = next(it, None)
                    if example:
                        yield package, tuple(sorted(set(features))), example


def main():
    groups = defaultdict(set)
    for package, features, example in commands():
        groups[(package, features)].add(example)
    if len(groups) < 3:
        sys.exit("too few commands found: the extraction broke")
    for (package, features), examples in sorted(groups.items()):
        cmd = ["cargo", "build", "-p", package]
        if features:
            cmd += ["--features", ",".join(features)]
        for e in sorted(examples):
            cmd += ["--example", e]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"{sum(len(e) for e in groups.values())} commands build as written")


if __name__ == "__main__":
    main()
