"""What every part of the lab trains with: datasets (the digits bundled, torchvision's and image
folders read from disk), the networks of the distillation literature, and the evaluation protocol
(fresh networks trained on a set, tested on the real test split)."""
