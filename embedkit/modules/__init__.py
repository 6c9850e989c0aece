"""Model building blocks that sentence-transformers lacks.

- :mod:`~embedkit.modules.experts`: per-domain copies of an encoder's feed-forward blocks, routed by row.
- :mod:`~embedkit.modules.moe`: ``MoETransformer`` (a savable sentence-transformers module with enforced
  domain routing), :func:`routed` (encode under a domain) and :func:`to_moe` (convert a model).
- :mod:`~embedkit.modules.batchnorm`: asymmetric batch normalisation (CCP).
- :mod:`~embedkit.modules.memory`: per-language memory bank of earlier embeddings (CCP).
- :mod:`~embedkit.modules.loading`: whether a saved folder needs ``trust_remote_code`` only for embedkit's modules.
"""
from embedkit.modules.batchnorm import AsymmetricBatchNorm
from embedkit.modules.experts import RoutedExperts, add_experts
from embedkit.modules.loading import uses_embedkit_modules
from embedkit.modules.memory import LanguageMemoryBank
from embedkit.modules.moe import MoETransformer, is_moe, model_domains, routed, to_moe

__all__ = ["AsymmetricBatchNorm", "LanguageMemoryBank", "MoETransformer", "RoutedExperts", "add_experts", "is_moe",
           "model_domains", "routed", "to_moe", "uses_embedkit_modules"]
