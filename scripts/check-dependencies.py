#!/usr/bin/env python3
"""Checks that each target's declared dependencies in Package.swift are the modules its
sources import, and nothing else (executables that the tests start are declared as
dependencies of the test target that starts them, and may not be imported).

Reads `swift package dump-package` and the `import` lines of each target's sources.
Exit 1 with one line per mismatch."""
import json, os, re, subprocess, sys

SYSTEM = {"Glibc", "Foundation", "Dispatch", "Testing", "XCTest", "Synchronization", "Darwin", "FoundationEssentials"}
top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
package = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=top, check=True,
                                    capture_output=True, text=True).stdout)
executables = {t["name"] for t in package["targets"] if t["type"] == "executable"}
problems = []
for target in package["targets"]:
    if target["type"] == "system":
        continue
    name = target["name"]
    path = target.get("path") or ("Tests/" if target["type"] == "test" else "Sources/") + name
    declared = {}
    for dep in target["dependencies"]:
        kind, value = next(iter(dep.items()))
        module = value[0]
        declared[module.replace("-", "_")] = module
    imports = set()
    for root, _, files in os.walk(os.path.join(top, path)):
        for file in files:
            if file.endswith(".swift"):
                for line in open(os.path.join(root, file), encoding="utf-8"):
                    m = re.match(r"\s*(?:@testable\s+|@preconcurrency\s+|@_implementationOnly\s+|package\s+|public\s+)*import\s+(?:struct\s+|enum\s+|class\s+|func\s+)?(\w+)", line)
                    if m:
                        imports.add(m.group(1))
    for module in sorted(imports - SYSTEM - set(declared)):
        problems.append(f"{name} imports {module}, which it does not declare")
    for module, spelled in sorted(declared.items()):
        if module not in imports and not (target["type"] == "test" and spelled in executables):
            problems.append(f"{name} declares {spelled}, which it does not import")
for line in problems:
    print(line)
print(f"check-dependencies: {len(problems)} mismatch(es)")
sys.exit(1 if problems else 0)
