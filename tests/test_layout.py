"""The package's layout rules: no module reaches into another's private names, and no stale module lingers."""
import ast, subprocess, sys
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent/'digit_nbdev'
MODULES = sorted(p for p in LIB.glob('*.py') if p.name != '_modidx.py')

def private_uses(path: Path) -> list[str]:
    "The private names `path` takes from other modules of the package: `from .x import _y`, or `x._y` of a module imported as `x`."
    tree, found = ast.parse(path.read_text()), []
    package_modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('digit_nbdev')):
            for a in node.names:
                if a.name.startswith('_') and a.name != '__version__': found.append(f"{path.name}: from {'.' * node.level}{node.module or ''} import {a.name}")
                else: package_modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            package_modules |= {(a.asname or a.name).split('.')[-1] for a in node.names if a.name.startswith('digit_nbdev')}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in package_modules
                and node.attr.startswith('_') and not node.attr.startswith('__')):
            found.append(f"{path.name}: {node.value.id}.{node.attr}")
    return found

def test_no_private_name_crosses_modules():
    assert len(MODULES) > 15
    assert [u for p in MODULES for u in private_uses(p)] == []

def test_the_check_catches_a_private_import(tmp_path):
    bad = tmp_path/'bad.py'
    bad.write_text('from .paper import _coarse\nfrom digit_nbdev import stationery\nx = stationery._noise_tile(4)\n')
    assert private_uses(bad) == ['bad.py: from .paper import _coarse', 'bad.py: stationery._noise_tile']

def test_each_module_has_its_notebook():
    "One stage, one notebook, one module: `nbs/NN_<stem>.ipynb` exports `digit_nbdev/<stem>.py`."
    stems = {p.stem.split('_', 1)[1] for p in (LIB.parent/'nbs').glob('[0-9][0-9]*_*.ipynb')}
    assert {p.stem for p in MODULES if p.name != '__init__.py'} == stems

def test_predict_imports_only_what_it_runs():
    "`predict`'s import chain leaves out what it never runs: the command-line parser (fastcore), TensorFlow, plotting, and the stages that make synthetic images or train."
    code = "import sys, digit_nbdev.predict; print(' '.join(sorted(sys.modules)))"
    mods = set(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=LIB.parent).stdout.split())
    assert 'digit_nbdev.runtime' in mods  # the check sees what `predict` imports
    assert sorted(m for m in mods if m.split('.')[0] in ('fastcore', 'asyncio', 'tensorflow', 'keras', 'matplotlib')) == []
    synthetic = ('pen', 'image_files', 'stationery', 'camera', 'photos', 'fonts', 'number_photos', 'robustness_set',
                 'run_files', 'evaluation', 'model_card', 'training', 'strokes', 'styles')
    assert sorted(mods & {f'digit_nbdev.{m}' for m in synthetic}) == []

def test_the_cli_leaves_out_mnist():
    "`digit_predict` reads images: the MNIST downloader (`data`: urllib, tarfile, the web mirrors) is imported only by what trains."
    code = "import sys, digit_nbdev.cli; print(' '.join(sorted(sys.modules)))"
    mods = set(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=LIB.parent).stdout.split())
    assert 'digit_nbdev.page' in mods  # the check sees what the CLI imports
    assert sorted(m for m in mods if m in ('digit_nbdev.data', 'tarfile', 'urllib.request')) == []
