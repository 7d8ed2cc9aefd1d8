"""The package as users get it: a wheel built from the repo, installed into an empty venv, carries the shipped
model and the dashboard notebook, imports, and runs `digit_predict`."""
import os, subprocess, sys, venv, zipfile
from pathlib import Path
import pytest
from digit_nbdev.data import load_mnist
from digit_nbdev.photos import render_digit, encode

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out), str(ROOT)], check=True)
    (whl,) = out.glob('digit_nbdev-*.whl')
    return whl

def test_wheel_ships_model_and_dashboard(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in ('digit_cnn.tflite', 'digit_cnn.keras', 'digit_cnn.json', 'digit_cnn.md', 'segment_check.tflite', 'segment_check.md',
              'line_reader.tflite', 'line_reader.md'):
        assert f'digit_nbdev/models/{f}' in names
    assert 'digit_nbdev/app/dashboard.ipynb' in names
    assert not any('runs/' in n or n.startswith('nbs/') for n in names)

def test_wheel_in_empty_venv_runs_digit_predict(wheel, tmp_path):
    env_dir = tmp_path/'venv'
    venv.create(env_dir, with_pip=True)
    py, bin_ = env_dir/'bin'/'python', env_dir/'bin'
    # Dependencies come from the registry (or pip's cache): nothing of this checkout is on the path.
    subprocess.run([str(py), '-m', 'pip', 'install', '-q', str(wheel)], check=True, cwd=tmp_path)
    r = subprocess.run([str(py), '-c', 'import digit_nbdev.data, digit_nbdev.inference as i; print(i.__file__)'],
                       capture_output=True, text=True, cwd=tmp_path, check=True)
    assert str(env_dir) in r.stdout
    (x, y) = load_mnist()[1]
    photo = tmp_path/'digit.jpg'; photo.write_bytes(encode(render_digit(x[0], 'paper', seed=4), 'JPEG', quality=90))
    r = subprocess.run([str(bin_/'digit_predict'), str(photo)], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'{photo}: {y[0]} (')
