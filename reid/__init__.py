"""reid: the package behind reid-book, a readable person re-identification strong baseline."""

from .colab import setup
from .config import Config
from .utils import describe_device, get_device, seed_everything, show_source

__version__ = "0.1.0"
__all__ = ["Config", "describe_device", "get_device", "seed_everything", "setup", "show_source", "__version__"]
