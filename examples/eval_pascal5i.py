"""PASCAL-5i evaluation (paper Table 2): per-fold and mean mIoU and FB-IoU.

python examples/eval_pascal5i.py --pascal-root data/pascal5i --checkpoint fold0.pt ... fold3.pt
"""

import sys

from eval_pascal2coco import main as eval_main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--coco-root" in args:
        raise SystemExit(
            "eval_pascal5i.py scores PASCAL-5i only; use eval_pascal2coco.py for COCO-20i"
        )
    raise SystemExit(
        eval_main(args + ["--out", "results/pascal5i"] if "--out" not in args else args)
    )
