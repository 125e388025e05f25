"""The lab: the research application built on the op library (kaleido_cuda's top-level modules
and kaleido_cuda.dsa), which never imports it. One subpackage per job; imports go down this list:

    cli/          `kaleido` (and `python -m kaleido_cuda`): one module per command, parsing only
    pipeline/     what each command runs: run folders from start to report, audits, quick start, demo
    distill/      the distillation loops (DM, DC, MTT) and MTT's expert buffers
    privacy/      explicit-privacy and membership-inference measurement
    dp/           formal differential privacy: accountant, DP-DM's mechanism, DP-SGD
    train/        datasets, networks and the evaluation protocol
    distributed   torchrun: process group and the keyed split of work
    files/        run-folder layout, atomic writes, PNG grids, provenance stamps

docs/architecture.md draws it.
"""
