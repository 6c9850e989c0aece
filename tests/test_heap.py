import resource

import psutil
import pytest
import torch

from embedkit import heap

pytestmark = pytest.mark.skipif(not heap.available(), reason="glibc only")

# torch, not numpy: numpy asks for transparent huge pages, which fault once per 2 MB
BUFFER = 64 * 2**20  # above glibc's largest mmap threshold (32 MB), like a long-text attention buffer


def fewest_faults_per_allocation(repeats: int = 16) -> int:
    """The fewest minor page faults of ``repeats`` buffers allocated, touched and freed in turn (while
    reusing, the first few may still grow the heap: small Python objects land in the freed chunk)."""
    faults = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(BUFFER // 4)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(faults)


def resident_bytes() -> int:
    return psutil.Process().memory_info().rss


def test_freed_buffers_are_reused_inside_the_block_and_handed_back_at_its_end():
    pages = BUFFER // resource.getpagesize()
    with heap.reuse_freed_memory():
        assert fewest_faults_per_allocation() < pages // 20
        kept = resident_bytes()
    assert kept - resident_bytes() > BUFFER // 2  # the heap is trimmed on exit


def test_nested_blocks_keep_the_setting_until_the_outermost_exits():
    pages = BUFFER // resource.getpagesize()
    with heap.reuse_freed_memory():
        with heap.reuse_freed_memory():
            pass
        assert fewest_faults_per_allocation() < pages // 20
        kept = resident_bytes()
    assert kept - resident_bytes() > BUFFER // 2
