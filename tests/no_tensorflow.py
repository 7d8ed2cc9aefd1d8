"An environment in which TensorFlow and Keras cannot be imported, for the tests of the base install's one-line messages."
import os
from pathlib import Path

def without_tensorflow(tmp_path: Path, env=None) -> dict:
    "`env` (default: this process's) where `import tensorflow` and `import keras` fail as they do where they are not installed."
    fake = tmp_path/'no_tensorflow'
    for name in ('tensorflow', 'keras'):
        (fake/name).mkdir(parents=True)
        (fake/name/'__init__.py').write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    env = dict(os.environ if env is None else env)
    return {**env, 'PYTHONPATH': os.pathsep.join(p for p in (str(fake), env.get('PYTHONPATH', '')) if p)}
