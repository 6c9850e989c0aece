"""Contrastive losses for ``SentenceTransformerTrainer``, each in its own module, each citing its paper.

Every loss is an ``nn.Module`` called as ``loss(sentence_features, labels)`` like sentence-transformers'
own losses; ``forward`` embeds the columns and delegates to a pure function of the embeddings.

==================  ==============================================  =====================================
loss                batch columns (in order)                        paper
==================  ==============================================  =====================================
InfoNCELoss         anchor, positive[, negative_1, ...]             van den Oord 2018; SimCSE (Gao 2021)
CachedInfoNCELoss   anchor, positive[, negative_1, ...]             GradCache (Gao et al. 2021)
DebCSELoss          anchor, positive[, negative_1, ...]             DebCSE (Miao et al. 2023)
WhitenedCSELoss     sentence (one column, encoded num_views times)  WhitenedCSE (Zhuo et al. 2023)
CoSENTLoss          sentence1, sentence2, score (label)             CoSENT (Su 2022; Huang et al. 2024)
CCPLoss             anchor, context sentence, language id (label)   CCP (Wu et al. 2022)
matryoshka_loss     as the wrapped loss                             Matryoshka (Kusupati et al. 2022)
==================  ==============================================  =====================================

SimCSE unsupervised is ``InfoNCELoss`` on (sentence, same sentence) pairs; SimCSE supervised is
``InfoNCELoss`` on NLI (premise, entailment, contradiction) triplets. ``GroupWhitening`` is the shuffled
group whitening module of WhitenedCSE; :mod:`embedkit.losses.gather` gathers embeddings across processes.
"""
from embedkit.losses.cached import CachedInfoNCELoss
from embedkit.losses.ccp import CCPLoss, ccp_loss
from embedkit.losses.cosent import CoSENTLoss
from embedkit.losses.debcse import DebCSELoss
from embedkit.losses.infonce import InfoNCELoss, info_nce
from embedkit.losses.matryoshka import matryoshka_loss
from embedkit.losses.whitening import GroupWhitening, WhitenedCSELoss

__all__ = ["CCPLoss", "CachedInfoNCELoss", "CoSENTLoss", "DebCSELoss", "GroupWhitening", "InfoNCELoss",
           "WhitenedCSELoss", "ccp_loss", "info_nce", "matryoshka_loss"]
