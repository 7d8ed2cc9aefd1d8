"""Fail when the exported package differs from what the notebooks export (never hand-edit digit_nbdev/*.py).

Runs `nbdev_export` and compares the package's Python files before and after: any change, new or removed
file means the notebooks and the package were out of sync. The tree is left as the notebooks export it."""
import hashlib, subprocess, sys
from pathlib import Path

def snapshot(lib=Path('digit_nbdev')):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(lib.rglob('*.py')) if '__pycache__' not in p.parts}

before = snapshot()
subprocess.run([str(Path(sys.executable).parent/'nbdev_export')], check=True)
after = snapshot()
changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
if changed:
    print("The package is out of sync with the notebooks; nbdev_export changed:", *changed, sep='\n  ')
    print("Edit the notebooks (not digit_nbdev/*.py), run nbdev_export and commit both.")
    sys.exit(1)
print(f"notebooks and package in sync ({len(after)} files)")
