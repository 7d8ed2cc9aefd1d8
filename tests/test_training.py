"""An interrupted training resumes from its last checkpoint (losing at most one epoch), and model files are
written atomically. Small runs (2k training images): about half a minute in all on 2 CPU cores. Without
TensorFlow (the base install), `digit_train` says what to install in one line. The style digits training mixes in
are brought to MNIST's form exactly as uploads are."""
import csv, os, signal, subprocess, sys, textwrap
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
    from digit_nbdev.training import train, read_history
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
    from digit_nbdev.training import _atomic_write
    target = tmp_path/'digit_cnn.keras'
    target.write_bytes(b'old model')
    def half_write(p):
        Path(p).write_bytes(b'partial'); raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'): _atomic_write(target, half_write)
    assert target.read_bytes() == b'old model'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['digit_cnn.keras']
    _atomic_write(target, lambda p: Path(p).write_bytes(b'new model'))
    assert target.read_bytes() == b'new model' and sorted(p.name for p in tmp_path.iterdir()) == ['digit_cnn.keras']

def test_digit_train_without_tensorflow_says_what_to_install(tmp_path):
    "The base install has no TensorFlow: `digit_train` prints one line, exits with status 2 and writes nothing."
    r = subprocess.run([str(Path(sys.executable).parent/'digit_train'), '--out', str(tmp_path/'run')], capture_output=True,
                       text=True, timeout=120, env=without_tensorflow(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (2, '', "digit_train: training needs TensorFlow: pip install 'digit_nbdev[train]'\n")
    assert not (tmp_path/'run').exists()

def test_style_digits_take_the_uploads_mnist_form():
    "Style digits are finished by `data.mnist_form` (stage 01 cannot import stage 08) exactly as uploads by `normalise.to_mnist`."
    from digit_nbdev.data import draw_strokes, load_mnist, mnist_form, upscale_digit
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
