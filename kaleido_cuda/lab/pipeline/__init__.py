"""What the `kaleido` commands run, one module each: a distillation run from its configuration to
its report (distill), re-evaluation (evaluation), expert buffers (buffer), membership audits of run
folders and foreign sets (audit), the reference audits (references), DP-SGD runs (dpsgd), the quick
start and the demo. Each writes a run folder laid out as files/layout.py says."""
