"""Train SM-VCENet (or any registered model) on PASCAL-5i and print the paper's table.

Without --data-root: the toy demo. It builds the embedded toy dataset, trains SM-VCENet, the
DeepLab baseline and few-shot SM-VCENet over EfficientNet-Lite0 with real ImageNet weights
(fewzero[weights]) on a short schedule, and evaluates them (zero-shot; few-shot at 1 and 5 shots)
and an untrained SM-VCENet on the unseen classes. Defaults marked "toy:" in the option list
apply there; every flag given on the command line wins in both modes.

With --data-root (a folder built by `python -m fewzero.data.prepare pascal ...`): the paper's
training (SGD lr 0.0025, momentum 0.9, wd 5e-4, 200 epochs, batch 4, poly 0.9) of --model on
--fold, then evaluation on the fold's fixed test episodes (and PASCAL2COCO with --coco-root).

Few-shot: --model sm_vcenet_fewshot_resnet50 --shots 1 5 trains on 1-shot episodes and
evaluates 1-shot and 5-shot. A run folder that holds a run is refused unless --resume (continue
it; only --lr and --epochs may change, and only when given) or --overwrite.

Multi-GPU/CPU: torchrun --nproc_per_node=N examples/train_pascal5i.py ... (--batch-size is global).
"""

import sys

from fewzero.engine.train_cli import main

if __name__ == "__main__":
    sys.exit(main())
