__version__ = "0.1.0"

# The one error type of digit_nbdev (defined in `digit_nbdev.core`): catch it around any call.
from .core import DigitError
