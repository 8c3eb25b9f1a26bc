"""PASCAL2COCO (paper Table 1) and the ablation (Table 3) from trained checkpoints.

    python examples/eval_pascal2coco.py --pascal-root data/pascal5i --coco-root data/coco20i \
        --checkpoint runs/sm_vcenet_resnet50_fold0/checkpoint_last.pt ... [--out results/]

Each checkpoint knows its model and fold. Every checkpoint is opened before any evaluation, so a
wrong path fails at once. Rows come out in the paper's layout (PASCAL-5^i mIoU, COCO-20^j mIoU for
j = 0..3, averages) as a printed table plus Markdown, CSV and JSON files in --out. Few-shot
checkpoints are evaluated at every --shots count.
"""

import sys

from fewzero.engine.evaluation_cli import run

if __name__ == "__main__":
    sys.exit(run(__doc__, coco=True))
