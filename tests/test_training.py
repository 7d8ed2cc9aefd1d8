"""An interrupted training resumes from its last checkpoint (losing at most one epoch), and model files are
written atomically. Small runs (2k training images): about half a minute in all on 2 CPU cores. Without
TensorFlow (the base install), `digit_train` says what to install in one line. The style digits training mixes in
are brought to MNIST's form exactly as uploads are.

Faults, each run as `digit_train` processes (`--quick --arch simple` on 600 training digits: seconds): a read-only output
directory, a disk that fills up mid-run, a truncated checkpoint and no MNIST anywhere end in one line that says
what to do, leave no half-written file and keep the last good checkpoint. Where this process may mount a small
tmpfs (root), the read-only directory and the full disk are real; everywhere, the same faults are also injected
as `OSError`s by a `sitecustomize` shim in the `digit_train` process."""
import contextlib, csv, errno, json, os, shutil, signal, socket, subprocess, sys, textwrap, time, zipfile
from pathlib import Path
import numpy as np
import pytest
from no_tensorflow import without_tensorflow

SMALL = dict(n_train=2000, n_valid=500, n_test=500, batch_size=64, verbose=0)

# A hard crash (SIGKILL: no exception handler, no `finally`, no Keras clean-up) right after the end of
# the second epoch, once its checkpoint and history row are written: as if the machine went down.
CRASHING_RUN = textwrap.dedent(f"""
    import os, signal, sys, keras
    from digit_nbdev.training import train
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1: os.kill(os.getpid(), signal.SIGKILL)
    train(epochs=3, out_dir=sys.argv[1], callbacks=[Crash()], **{SMALL!r})
""")

def logged_epochs(out: Path) -> list:
    with open(out/'history.csv') as f: return [int(r['epoch']) for r in csv.DictReader(f)]

def leftovers(out: Path) -> list:
    return sorted(p.name for p in out.rglob('*') if p.name.startswith('.tmp-') or p.suffix == '.part')

@pytest.fixture(scope='module')
def keras_callback():
    from digit_nbdev.model import import_keras
    keras = import_keras()
    class Seen(keras.callbacks.Callback):
        def __init__(self): super().__init__(); self.epochs = []
        def on_epoch_end(self, epoch, logs=None): self.epochs.append(epoch)
    return Seen

def test_killed_training_resumes(tmp_path, keras_callback):
    from digit_nbdev.training import train
    from digit_nbdev.run_files import read_history
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, '-c', CRASHING_RUN, str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    # killed after 2 of 3 epochs: their checkpoint and history are there, no model yet, nothing half-written
    assert logged_epochs(out) == [0, 1]
    assert (out/'backup').is_dir()
    assert not (out/'digit_cnn.keras').exists() and not (out/'digit_cnn.json').exists()
    assert leftovers(out) == []

    # the same call again resumes at the third epoch instead of starting over
    seen = keras_callback()
    model, hist = train(epochs=3, out_dir=out, callbacks=[seen], **SMALL)
    assert seen.epochs == [2]
    assert logged_epochs(out) == [0, 1, 2]  # each epoch exactly once
    assert len(hist['loss']) == 3
    for name in ('digit_cnn.keras', 'digit_cnn.tflite', 'digit_cnn.json', 'digit_cnn.md'): assert (out/name).is_file()
    assert not (out/'backup').exists()  # checkpoints are removed once the run is complete
    assert leftovers(out) == []
    import json
    card = json.loads((out/'digit_cnn.json').read_text())
    assert card['epochs_run'] == 3 and card['test_images'] == 500

    # a new run in the same directory (nothing to resume) starts a new history instead of appending to it
    seen = keras_callback()
    train(epochs=1, out_dir=out, callbacks=[seen], **dict(SMALL, n_train=256))
    assert seen.epochs == [0] and logged_epochs(out) == [0]

def test_fresh_discards_checkpoint(tmp_path, keras_callback):
    "`resume=False` (digit_train --fresh) ignores a checkpoint left by an interrupted run."
    from digit_nbdev.model import import_keras
    from digit_nbdev.training import train
    keras = import_keras()
    out = tmp_path/'run'
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None): raise RuntimeError("simulated crash")
    with pytest.raises(RuntimeError, match="simulated crash"): train(epochs=2, out_dir=out, callbacks=[Interrupt()], **dict(SMALL, n_train=256))
    assert (out/'backup').is_dir() and logged_epochs(out) == [0]
    seen = keras_callback()
    train(epochs=1, out_dir=out, resume=False, callbacks=[seen], **dict(SMALL, n_train=256))
    assert seen.epochs == [0] and logged_epochs(out) == [0]

def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    "A save that fails half-way leaves neither a partial file nor a temporary one; the old file survives."
    from digit_nbdev.run_files import atomic_write
    target = tmp_path/'digit_cnn.keras'
    target.write_bytes(b'old model')
    def half_write(p):
        Path(p).write_bytes(b'partial'); raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'): atomic_write(target, half_write)
    assert target.read_bytes() == b'old model'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['digit_cnn.keras']
    atomic_write(target, lambda p: Path(p).write_bytes(b'new model'))
    assert target.read_bytes() == b'new model' and sorted(p.name for p in tmp_path.iterdir()) == ['digit_cnn.keras']

def test_digit_train_without_tensorflow_says_what_to_install(tmp_path):
    "The base install has no TensorFlow: `digit_train` prints one line, exits with status 2 and writes nothing."
    r = subprocess.run([str(Path(sys.executable).parent/'digit_train'), '--out', str(tmp_path/'run')], capture_output=True,
                       text=True, timeout=120, env=without_tensorflow(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (2, '', "digit_train: training needs TensorFlow: pip install 'digit_nbdev[train]'\n")
    assert not (tmp_path/'run').exists()

def test_style_digits_take_the_uploads_mnist_form():
    "Style digits are finished by `strokes.mnist_form` (stage 01a cannot import stage 08) exactly as uploads by `normalise.to_mnist`."
    from digit_nbdev.data import load_mnist
    from digit_nbdev.strokes import draw_strokes, mnist_form, upscale_digit
    from digit_nbdev.normalise import to_mnist
    (x, _), _ = load_mnist()
    rng = np.random.default_rng(0)
    inks = [upscale_digit(d) for d in x[:40]]
    # thin pens (thickened to MNIST's width), MNIST-like ones, and thick markers (thinned)
    inks += [draw_strokes((200, 160), [rng.uniform(20, 140, (4, 2))], width, sigma=0) for width in (2, 6, 20, 40, 60)]
    for ink in inks:
        ys, xs = np.nonzero(ink > 0.25)
        crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert np.array_equal(mnist_form(ink), np.round(to_mnist(crop, crop > 0.5) * 255).astype(np.uint8))

# ---- faults of `digit_train`, as processes ------------------------------------------------------------------------

DIGIT_TRAIN = str(Path(sys.executable).parent/'digit_train')
QUICK = ('--quick', '--arch', 'simple')  # 2 epochs of the small CNN (on the shim's 600 training digits: seconds)

# A `sitecustomize` for the `digit_train` processes of these tests. It keeps them short: MNIST is cut to its first
# $MNIST_SUBSET training digits (5,000 of which are the validation split) and 1,000 test digits. And it injects the
# faults: files opened for writing under $FAULT_DIR (and named like $FAULT_NAME) are refused as on a read-only file
# system ($FAULT=read-only), or take half of their first write and then say the disk is full ($FAULT=full).
SHIM = textwrap.dedent('''
    import builtins, errno, fnmatch, io, os

    if os.environ.get('MNIST_SUBSET'):
        import digit_nbdev.training as training
        _load, _n = training.load_mnist, int(os.environ['MNIST_SUBSET'])
        def _subset(*args, **kwargs):
            (x, y), (x_test, y_test) = _load(*args, **kwargs)
            return (x[:_n], y[:_n]), (x_test[:1000], y_test[:1000])
        training.load_mnist = _subset

    DIR, FAULT, NAME = os.environ.get('FAULT_DIR', ''), os.environ.get('FAULT'), os.environ.get('FAULT_NAME', '*')
    _open, _os_open, _mkdir = io.open, os.open, os.mkdir

    def _hit(path):
        try: p = os.path.abspath(os.fsdecode(path))
        except TypeError: return False  # a file descriptor
        return p.startswith(DIR) and fnmatch.fnmatch(os.path.basename(p), NAME)

    def _refuse(path): raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    class _Filling:
        def __init__(self, f): self._f = f
        def write(self, b):
            self._f.write(b[:len(b) // 2]); self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        def __getattr__(self, name): return getattr(self._f, name)
        def __enter__(self): return self
        def __exit__(self, *exc): self._f.close()

    def open(file, mode='r', *args, **kwargs):
        writing = bool(set(mode) & set('wax+'))
        if writing and FAULT == 'read-only' and _hit(file): _refuse(file)
        f = _open(file, mode, *args, **kwargs)
        return _Filling(f) if writing and FAULT == 'full' and _hit(file) else f

    def os_open(path, flags, *args, **kwargs):
        if FAULT == 'read-only' and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _hit(path): _refuse(path)
        return _os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if FAULT == 'read-only' and _hit(path): _refuse(path)
        return _mkdir(path, *args, **kwargs)

    if FAULT: builtins.open = io.open = open; os.open = os_open; os.mkdir = mkdir
''')

def train_env(tmp_path: Path, env=None, **faults) -> dict:
    "The environment of a short `digit_train` process (see `SHIM`), with `faults` (FAULT=..., FAULT_DIR=...) if any."
    shim = tmp_path/'shim'; shim.mkdir(exist_ok=True)
    (shim/'sitecustomize.py').write_text(SHIM)
    env = env or os.environ
    return {**env, 'PYTHONPATH': os.pathsep.join(p for p in (str(shim), env.get('PYTHONPATH')) if p),
            'MNIST_SUBSET': '5600', 'TF_CPP_MIN_LOG_LEVEL': '2', **faults}

def run_train(out: Path, *args, env, timeout=300):
    return subprocess.run([DIGIT_TRAIN, '--out', str(out), *QUICK, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)

def one_line_error(r) -> str:
    "The single line `digit_train` printed on stderr when it failed (status 2, no traceback)."
    assert r.returncode == 2 and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('digit_train: '), r.stderr[-3000:]
    return lines[0]

def card_of(out: Path) -> dict: return json.loads((out/'digit_cnn.json').read_text())

def intact(path: Path) -> bool:
    "A `.keras` checkpoint whose every member's CRC checks out."
    with zipfile.ZipFile(path) as z: return z.testzip() is None

@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    "A tmpfs of `size` mounted at `path` while in the block; the test is skipped where mounting is not allowed."
    if os.geteuid() != 0 or not shutil.which('mount'): pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f"size={size}{',ro' if read_only else ''}", 'tmpfs', str(path)],
                       capture_output=True, text=True)
    if r.returncode: pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try: yield path
    finally: subprocess.run(['umount', str(path)], check=True)

@pytest.mark.parametrize('how', ['chmod', 'mount', 'injected'])
def test_read_only_output_directory(tmp_path, how):
    "A directory `digit_train` may not write: one line naming it, before any training, and nothing written."
    ro, faults = tmp_path/'ro', {}
    with contextlib.ExitStack() as stack:
        if how == 'chmod':
            if os.geteuid() == 0: pytest.skip("root writes through chmod: the mount and the injected fault stand for it")
            ro.mkdir(); ro.chmod(0o555); stack.callback(ro.chmod, 0o755)
        elif how == 'mount': stack.enter_context(tmpfs(ro, '1m', read_only=True))
        else: ro.mkdir(); faults = dict(FAULT='read-only', FAULT_DIR=str(ro.resolve()))
        r = run_train(ro/'run', env=train_env(tmp_path, **faults))
        line = one_line_error(r)
        assert line.startswith(f"digit_train: cannot write {ro/'run'} (") and line.endswith("): choose another --out"), line
        assert 'Epoch' not in r.stdout and not (ro/'run').exists()

@pytest.mark.parametrize('how', ['mount', 'injected'])
def test_full_disk_keeps_the_last_checkpoint(tmp_path, how):
    """A disk that fills up after the first epoch's checkpoint: one line, that checkpoint intact, no half-written
    file; once there is room, the same command resumes at the second epoch and the card counts 2 epochs."""
    disk = tmp_path/'disk'
    with contextlib.ExitStack() as stack:
        if how == 'mount':
            stack.enter_context(tmpfs(disk, '8m'))
            out = disk/'run'
            p = subprocess.Popen([DIGIT_TRAIN, '--out', str(out), *QUICK], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=train_env(tmp_path))
            stack.callback(lambda: p.poll() is None and (p.kill(), p.wait()))  # before the tmpfs is unmounted
            first, t0 = out/'backup'/'epoch-0001.keras', time.monotonic()
            while not first.exists() and p.poll() is None and time.monotonic() - t0 < 240: time.sleep(0.02)
            assert first.exists(), p.communicate()[1][-3000:]
            with open(disk/'filler', 'wb') as f:  # fill the disk before the second epoch ends
                with pytest.raises(OSError) as full:
                    for _ in range(10_000): f.write(bytes(1 << 16)); f.flush()
                assert full.value.errno == errno.ENOSPC
            stdout, stderr = p.communicate(timeout=240)
            r = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
        else:
            disk.mkdir(); out = disk/'run'
            r = run_train(out, env=train_env(tmp_path, FAULT='full', FAULT_DIR=str(disk.resolve()),
                                             FAULT_NAME='.tmp-*-epoch-0002.keras'))
        line = one_line_error(r)
        assert line.startswith(f"digit_train: no space left to write {out}") and 'free some space' in line, line
        assert [c.name for c in (out/'backup').iterdir()] == ['epoch-0001.keras'] and intact(out/'backup'/'epoch-0001.keras')
        assert leftovers(out) == [] and not list(out.glob('digit_cnn.*'))
        (disk/'filler').unlink(missing_ok=True)
        r = run_train(out, env=train_env(tmp_path))
        assert r.returncode == 0, r.stderr[-3000:]
        assert 'Epoch 2/2' in r.stdout and 'Epoch 1/2' not in r.stdout  # resumed after the first epoch
        assert card_of(out)['epochs_run'] == 2 and logged_epochs(out) == [0, 1]
        assert leftovers(out) == [] and not (out/'backup').exists()

def small_checkpoint(backup: Path, epochs: int) -> Path:
    "A checkpoint of `digit_train --quick --arch simple`'s model (untrained weights, its optimizer built) after `epochs` epochs."
    from digit_nbdev.model import build_model, import_keras
    from digit_nbdev.run_files import save_checkpoint
    keras = import_keras()
    model = build_model('simple')
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    model.optimizer.build(model.trainable_variables)
    return save_checkpoint(model, backup, epochs)

def test_truncated_checkpoint_falls_back_or_says_fresh(tmp_path):
    """A truncated newest checkpoint: `digit_train` resumes from the one before, says so on one line and counts each
    epoch once. No readable checkpoint: one line saying `--fresh`, which then starts over."""
    from digit_nbdev.run_files import write_history
    out = tmp_path/'run'; backup = out/'backup'
    good = small_checkpoint(backup, 1)
    (backup/'epoch-0002.keras').write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])  # cut short
    metrics = dict(accuracy=0.5, learning_rate=1e-3, loss=1.0, val_accuracy=0.5, val_loss=1.0)
    write_history(out/'history.csv', [dict(epoch=e, **metrics) for e in (0, 1)])  # both epochs were logged
    env = train_env(tmp_path)
    r = run_train(out, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.splitlines() == ["unreadable checkpoint (epoch-0002.keras: File is not a zip file): resuming from epoch-0001.keras"]
    assert 'Epoch 2/2' in r.stdout and 'Epoch 1/2' not in r.stdout
    assert card_of(out)['epochs_run'] == 2 and logged_epochs(out) == [0, 1]  # the second epoch, run again, counted once

    backup.mkdir(); (backup/'epoch-0001.keras').write_bytes(b'PK\x03\x04 cut')
    line = one_line_error(run_train(out, env=env))
    assert line.startswith(f"digit_train: cannot resume from the checkpoints in {backup} (epoch-0001.keras: ")
    assert line.endswith("run again with --fresh to start over"), line
    r = run_train(out, '--fresh', env=env)
    assert r.returncode == 0 and 'Epoch 1/2' in r.stdout, r.stderr[-3000:]
    assert card_of(out)['epochs_run'] == 2 and logged_epochs(out) == [0, 1] and not backup.exists()

def test_no_mnist_anywhere(tmp_path):
    "No MNIST in $DIGIT_NBDEV_DATA nor the cache, no npm, the web unreachable: one line that says what was tried and what to do."
    with socket.socket() as closed:  # a port of 127.0.0.1 that refuses connections: the proxy of every download
        closed.bind(('127.0.0.1', 0))
        proxy = f'http://127.0.0.1:{closed.getsockname()[1]}'
        (tmp_path/'empty').mkdir()
        env = train_env(tmp_path, DIGIT_NBDEV_DATA=str(tmp_path/'empty'), XDG_CACHE_HOME=str(tmp_path/'cache'),
                        PATH=str(Path(sys.executable).parent), https_proxy=proxy, HTTPS_PROXY=proxy, no_proxy='', NO_PROXY='')
        line = one_line_error(run_train(tmp_path/'run', env=env))
    for part in ('could not load MNIST', f"$DIGIT_NBDEV_DATA={tmp_path/'empty'}", 'npm is not installed', 'Connection refused',
                 'put its four files in a directory named by $DIGIT_NBDEV_DATA'):
        assert part in line, (part, line)
    assert not list((tmp_path/'run').iterdir())
