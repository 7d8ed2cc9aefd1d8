"""Run notebooks and save them with their outputs, so that every figure and table can be read on any git host.

`python tools/run_notebooks.py [nbs/NN_name.ipynb ...]` (default: every notebook in nbs/). Cells flagged `#| slow`
(full training), `#| eval: false` and the `nbdev_export()` cell are not run, as in `nbdev_test`. Outputs are then
cleaned by `nbdev_clean` (no execution counts, no volatile metadata, no memory addresses)."""
import os, subprocess, sys, time
from pathlib import Path
# Quiet TensorFlow's C++ start-up lines (they go to the terminal, not into the notebook, but they alarm).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

SKIP = ('slow', 'eval: false')
MAX_PNG = 120_000  # bytes: a larger figure is stored as a JPEG at most MAX_SIDE wide, so notebooks stay small in git
MAX_SIDE = 900

def skipped(cell) -> bool:
    "Whether `cell` is left unrun: markdown, the export cell, or flagged slow / eval: false."
    if cell.cell_type != 'code': return True
    if 'nbdev_export(' in cell.source: return True
    flags = [l[2:].strip() for l in cell.source.splitlines() if l.startswith('#|')]
    return any(f.startswith(s) for f in flags for s in SKIP)

def smaller(output) -> None:
    "Store a large PNG output (a photo shown whole) as a smaller JPEG."
    import base64, io
    from PIL import Image
    data = output.get('data', {})
    png = data.get('image/png')
    if not png or len(png) * 3 // 4 <= MAX_PNG: return
    img = Image.open(io.BytesIO(base64.b64decode(png))).convert('RGB')
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO(); img.save(buf, 'JPEG', quality=80)
    del data['image/png']; data['image/jpeg'] = base64.b64encode(buf.getvalue()).decode()
    output.get('metadata', {}).pop('image/png', None)

def run(path: Path) -> float:
    "Run the notebook at `path` in its folder and write it back with its outputs; seconds taken."
    t0, nb = time.time(), read_nb(path)
    for cell in nb.cells:
        if cell.cell_type == 'code': cell.outputs, cell.execution_count = [], None
    shell, cwd = CaptureShell(path), Path.cwd()
    os.chdir(path.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=skipped)
    finally: os.chdir(cwd)
    for cell in nb.cells:
        if cell.cell_type == 'code' and '#| output: false' in cell.source: cell.outputs = []  # (e.g. real images we may not publish)
        for output in cell.get('outputs', []): smaller(output)
    write_nb(nb, path)
    return time.time() - t0

if __name__ == '__main__':
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path('nbs').glob('*.ipynb'))
    for p in paths: print(f'{p}: {run(p.resolve()):.0f} s', flush=True)
    subprocess.run([str(Path(sys.executable).parent/'nbdev_clean')], check=True)
