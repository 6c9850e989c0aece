"""Arguments shared by every command that encodes."""
from __future__ import annotations

import argparse


def add_model_args(parser: argparse.ArgumentParser, model_required: bool = False) -> None:
    parser.add_argument("--model", default=None if model_required else "default", required=model_required,
                        help="'default' (packaged all-MiniLM-L6-v2), a local model folder, or a hub id")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: best available)")
    parser.add_argument("--query-prompt", default=None,
                        help="text prepended to queries (default: the model's 'query' prompt, if it defines one)")
    parser.add_argument("--document-prompt", default=None,
                        help="text prepended to documents (default: the model's 'document'/'passage' prompt, if any)")
