"""`python -m kaleido_cuda ...` is the `kaleido` command; torchrun launches it this way:
`torchrun --nproc-per-node N -m kaleido_cuda distill ...`."""
import sys

from .lab.cli import main

sys.exit(main())
