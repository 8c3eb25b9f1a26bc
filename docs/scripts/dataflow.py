"""Draw docs/assets/dataflow.svg: SM-VCENet's data flow, zero-shot and few-shot (static, offline).

python docs/scripts/dataflow.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "dataflow.svg"

NODES = {
    "x": (0.6, 3.0, "query image\n(B, 3, H, W)", "#e8eaf6"),
    "s": (0.6, 0.8, "support images + masks\n(B, K, 3, H', W')", "#fff3e0"),
    "bb": (2.6, 2.0, "frozen backbone\n(one pass, stride 8)", "#eeeeee"),
    "q": (4.7, 3.6, "query branch\nconv3x3(F2 ⊕ F3)", "#e8eaf6"),
    "f4": (4.7, 2.0, "I_class = B4(F3)\n(frozen layer4)", "#eeeeee"),
    "mam": (6.7, 2.0, "MAM: pyramid pooling\n1, 2, 3, 6 + 5C→C", "#e3f2fd"),
    "sam": (8.7, 2.0, "SAM: non-local\nE = cat(F_M, f(O_M))", "#e3f2fd"),
    "map": (8.7, 0.6, "few-shot: masked average\npooling, mean over K", "#fff3e0"),
    "ccm": (10.9, 3.0, "CCM: 1x1→256, 3 residual\nblocks, ASPP, 1x1→2", "#e8f5e9"),
    "y": (12.8, 3.0, "logits\n(B, 2, H, W)", "#e8f5e9"),
}
EDGES = [
    ("x", "bb", ""), ("s", "bb", ""), ("bb", "q", "F2, F3"), ("bb", "f4", ""),
    ("f4", "mam", ""), ("mam", "sam", ""), ("sam", "ccm", "zero-shot: query's E"),
    ("sam", "map", "supports' E"), ("map", "ccm", "prototype (tiled)"), ("q", "ccm", "F_query"),
    ("ccm", "y", ""),
]  # fmt: skip


def main() -> None:
    """Draw the diagram and write it."""
    fig, ax = plt.subplots(figsize=(13.6, 4.4))
    w, h = 1.75, 0.78
    for x, y, text, color in NODES.values():
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.04",
                facecolor=color,
                edgecolor="#455a64",
                linewidth=1.0,
            )  # fmt: skip
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5, family="DejaVu Sans")
    for a, b, label in EDGES:
        (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
        ax.annotate(
            "", xy=(xb - w / 2 if xb > xa else xb, yb if xb > xa else yb + h / 2),
            xytext=(xa + w / 2 if xb > xa else xa, ya if xb > xa else ya - h / 2),
            arrowprops=dict(arrowstyle="-|>", color="#37474f", lw=1.1, shrinkA=2, shrinkB=2),
        )  # fmt: skip
        if label:
            ax.text((xa + xb) / 2, (ya + yb) / 2 + 0.16, label, ha="center", fontsize=7.5,
                    color="#37474f", style="italic")  # fmt: skip
    ax.set_xlim(-0.4, 13.8)
    ax.set_ylim(0.0, 4.3)
    ax.axis("off")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, format="svg")
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
