"""``embedkit info``: this machine's CPU (model, cores, the instruction sets that decide the fastest encode
path), the installed encode backends, and what ``--backend auto`` has chosen here so far."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="CPU, instruction sets, installed encode backends and auto's choices")
    p.add_argument("--json", action="store_true", help="print one JSON line instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.cli.common import print_json_line
    from embedkit.encoding.auto import recorded_choices
    from embedkit.encoding.backends import installed_backends
    from embedkit.machine import FLAGS, accelerator, cpu_info

    cpu = cpu_info()
    info = {"cpu": cpu.model, "family": cpu.family, "model_number": cpu.model_number, "cores": cpu.cores,
            "kernels": cpu.kernels, "kind": cpu.kind,
            "flags": {flag: flag in cpu.flags for flag in FLAGS}, "device": accelerator(),
            "backends": installed_backends(), "auto": recorded_choices()}
    if args.json:
        print_json_line(info)
        return 0
    print(f"cpu       {cpu.model} (family {cpu.family or '?'}, model {cpu.model_number or '?'}; {cpu.cores} usable cores)")
    print(f"kind      {cpu.kind} (names this CPU's benchmark records)")
    print(f"kernels   {cpu.kernels}: " + ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in info["flags"].items()))
    print(f"device    {info['device']}")
    print("backends  " + ", ".join(f"{name} ({why})" if why != "yes" else name for name, why in info["backends"].items()))
    for choice in info["auto"] or [{"model": "-", "backend": "not calibrated yet on this machine", "device": "-"}]:
        print(f"auto      {choice['model']} on {choice['device']}: {choice['backend']}")
    return 0
