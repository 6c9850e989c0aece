"""What machine this is: the CPU's model and the instruction sets that decide which encode path is fastest.

The machines embedkit runs on change from day to day (AMD with AVX2 only, Intel with AVX-512 VNNI and
AMX have both been seen), so every benchmark record and ``embedkit info`` name the CPU and its flags.
Read from ``/proc/cpuinfo`` (Linux); elsewhere the model comes from ``platform`` and the flags are empty.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache

# The flags that change which kernels torch, ONNX Runtime and OpenVINO can use, by their /proc/cpuinfo names.
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
         "amx_int8")
VENDORS = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int  # usable by this process (its affinity), not the host's count
    flags: tuple[str, ...]  # the subset of FLAGS this CPU has
    family: str = ""  # /proc/cpuinfo's "cpu family" and "model": they tell generations apart where the model
    model_number: str = ""  # name does not (a VM's "AMD EPYC" is Zen 2 at family 23 model 49, Zen 5 at family 26)
    vendor: str = ""  # amd, intel, or /proc/cpuinfo's vendor_id as it is

    @property
    def vnni(self) -> bool:
        """int8 dot products in one instruction (AVX-512 VNNI or AVX-VNNI)."""
        return "avx512_vnni" in self.flags or "avx_vnni" in self.flags

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    @property
    def bf16(self) -> bool:
        """bf16 matrix products in hardware (AMX-BF16 tiles or AVX-512-BF16 dot products); elsewhere torch
        emulates them in float32, slower than float32 itself."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def int8(self) -> bool:
        """int8 matrix products in one instruction per dot product (VNNI or AMX-INT8), where int8 is fastest."""
        return self.vnni or "amx_int8" in self.flags

    @property
    def kernels(self) -> str:
        """The best matrix-product instruction set, as one word: amx, avx512_vnni, avx_vnni, avx512, avx2 or
        other (what decides which encode backend is fastest, see embedkit.encoding.auto)."""
        for name, present in (("amx", self.amx), ("avx512_vnni", "avx512_vnni" in self.flags),
                              ("avx_vnni", "avx_vnni" in self.flags), ("avx512", "avx512f" in self.flags),
                              ("avx2", "avx2" in self.flags)):
            if present:
                return name
        return "other"

    @property
    def kind(self) -> str:
        """One name per kind of CPU, e.g. ``amd-f26m2-avx512_vnni``: vendor, family and model number (the
        generation) and kernels. Benchmark records are kept apart by it; kernels alone would not do, since
        an AMD Zen 5 and an Intel Ice Lake both have AVX-512 VNNI and run the same backends at other speeds."""
        generation = f"f{self.family}m{self.model_number}" if self.family else "unknown"
        return f"{self.vendor or 'cpu'}-{generation}-{self.kernels}"

    def as_dict(self) -> dict:
        return {**asdict(self), "flags": list(self.flags), "kernels": self.kernels, "kind": self.kind}


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    model, flags = platform.processor() or platform.machine(), set()
    numbers = {"cpu family": "", "model": "", "vendor_id": ""}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in (platform.processor(), platform.machine()):
                    model = value.strip()
                elif key in numbers and not numbers[key]:
                    numbers[key] = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: no flags to read
        pass
    return CpuInfo(model, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                   tuple(f for f in FLAGS if f in flags), numbers["cpu family"], numbers["model"],
                   VENDORS.get(numbers["vendor_id"], numbers["vendor_id"].lower()))


def accelerator() -> str:
    """``cpu``, or the name of the first CUDA device when torch sees one (torch is imported only if loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"
