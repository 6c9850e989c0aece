"""Data loaders with typed records: STS pairs, BEIR collections, sentences, training tuples.

Every loader takes a path (absolute, relative to the working directory, or relative to
``EMBEDKIT_DATA``) and raises :class:`embedkit.errors.DataError` naming the file, the 1-based line
and the field for bad input. ``load_sts`` / ``load_beir`` also take a hub id (``owner/name``).
"""
from embedkit.data.beir import count_documents, iter_documents, load_beir, load_hub_beir
from embedkit.data.checksum import data_checksum, dataset_files, records_checksum
from embedkit.data.hub import load_hub_sts
from embedkit.data.pairs import load_pairs, load_sentences, load_triplets, read_lines
from embedkit.data.records import BEIRDataset, Document, STSDataset, STSPair, Triplet, full_text, normalize_genre
from embedkit.data.sts import load_sts

__all__ = [
    "BEIRDataset", "Document", "STSDataset", "STSPair", "Triplet",
    "count_documents", "data_checksum", "dataset_files", "full_text", "iter_documents", "load_beir", "load_hub_beir",
    "load_hub_sts", "load_pairs", "load_sentences", "load_sts", "load_triplets", "normalize_genre",
    "read_lines", "records_checksum",
]
