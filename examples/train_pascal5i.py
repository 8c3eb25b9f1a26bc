"""Train SM-VCENet (or any registered model) on PASCAL-5i and print the paper's table.

The same command as ``fewzero-train`` (``fewzero.engine.train_cli``): without --data-root the toy
demo (the README's first command); ``--help`` lists every flag.

    python examples/train_pascal5i.py                                  # the toy demo
    python examples/train_pascal5i.py --data-root data/pascal5i --fold 0
    torchrun --nproc_per_node=N examples/train_pascal5i.py ... (--batch-size is global)
"""

import sys

from fewzero.engine.train_cli import main

if __name__ == "__main__":
    sys.exit(main())
