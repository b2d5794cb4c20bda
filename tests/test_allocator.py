import sys

import pytest

from clead import allocator


def test_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("CLEAD_MALLOC_TUNING", "0")
    assert allocator.tune() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuning_applies_on_glibc_and_stops_fresh_mappings():
    import os

    try:
        if "glibc" not in os.confstr("CS_GNU_LIBC_VERSION").lower():
            pytest.skip("not glibc")
    except (ValueError, OSError):
        pytest.skip("not glibc")
    import resource

    import torch

    assert allocator.tune() is True
    big = 64 << 20  # above glibc's largest mmap threshold: by default every such allocation page-faults anew
    torch.empty(big // 4).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.empty(big // 4).fill_(1.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    pages = big // 4096
    # untuned: five fresh mappings (5 * pages faults); tuned: the heap is reused, at most one growth
    assert faults < 2 * pages, faults
