"""Fail when the exported package differs from what the notebooks export (never hand-edit digit_nbdev/*.py).

Runs `nbdev_export` and compares the package's Python files before and after: any change, new or removed
file means the notebooks and the package were out of sync. nbdev never deletes a module whose notebook was
renamed or removed, so a module no notebook exports is reported as stale. The tree is left as the notebooks
export it."""
import hashlib, json, re, subprocess, sys
from pathlib import Path

LIB, NBS = Path('digit_nbdev'), Path('nbs')
NOT_EXPORTED = {'__init__.py', '_modidx.py'}  # the version and package-level names; nbdev's index

def snapshot(lib=LIB):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(lib.rglob('*.py')) if '__pycache__' not in p.parts}

def exported_modules(nbs=NBS) -> set:
    "The module files the notebooks export: each `#| default_exp` and each `#| export <module>` target."
    found = set()
    for nb in nbs.glob('*.ipynb'):
        for cell in json.loads(nb.read_text())['cells']:
            for m in re.finditer(r'^#\|\s*(?:default_exp|export|exports)\s+([\w.]+)\s*$', ''.join(cell['source']), re.M):
                found.add(str(LIB/(m.group(1).replace('.', '/') + '.py')))
    return found

before = snapshot()
subprocess.run([str(Path(sys.executable).parent/'nbdev_export')], check=True)
after = snapshot()
changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
stale = sorted(f for f in after if Path(f).name not in NOT_EXPORTED and f not in exported_modules())
if changed:
    print("The package is out of sync with the notebooks; nbdev_export changed:", *changed, sep='\n  ')
    print("Edit the notebooks (not digit_nbdev/*.py), run nbdev_export and commit both.")
if stale:
    print("Stale modules that no notebook exports (nbdev does not delete them): delete them:", *stale, sep='\n  ')
if changed or stale: sys.exit(1)
print(f"notebooks and package in sync ({len(after)} files)")
