"""embedkit: train sentence and retrieval embedding models, index them with FAISS, evaluate them."""
from embedkit.encoding import cached_encode, encode
from embedkit.errors import ConfigError, DataError, EmbedkitError, ModelError
from embedkit.models import load_model, model_fingerprint
from embedkit.version import embedkit_version

__version__ = embedkit_version()
__all__ = ["ConfigError", "DataError", "EmbedkitError", "ModelError", "cached_encode", "encode", "load_model",
           "model_fingerprint", "__version__"]
