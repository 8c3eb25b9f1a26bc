"""PASCAL-5i evaluation (paper Table 2): per-fold and mean mIoU and FB-IoU of trained checkpoints.

    python examples/eval_pascal5i.py --pascal-root data/pascal5i \
        --checkpoint fold0.pt fold1.pt fold2.pt fold3.pt [--out results/pascal5i]

Every checkpoint is opened before any evaluation. Writes pascal5i.md/.csv/.json in --out; for
COCO-20i columns use eval_pascal2coco.py.
"""

import sys

from fewzero.engine.evaluation_cli import run

if __name__ == "__main__":
    sys.exit(run(__doc__, coco=False))
