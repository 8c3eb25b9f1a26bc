"""Draw docs/assets/dataflow.svg: SM-VCENet's data flow, zero-shot and few-shot (static, offline).

The figure is laid out top to bottom at the width of the docs' text column (7.4 in, drawn at
about 710 px), so its 10 pt labels show at about their size on the page.

python docs/scripts/dataflow.py            # writes the SVG
python docs/scripts/dataflow.py --png X    # also a PNG, to look at
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "dataflow.svg"

WIDTH, HEIGHT = 7.4, 7.6  # inches; the axes' units are inches, so boxes keep their shape
BOX_W, BOX_H = 2.3, 0.66
LEFT, MIDDLE, RIGHT = 1.3, 3.7, 6.1

NODES = {
    "x": (LEFT, 7.0, "query image\n(B, 3, H, W)", "#e8eaf6"),
    "s": (RIGHT, 7.0, "support images + masks\n(B, K, 3, H', W')", "#fff3e0"),
    "bb": (MIDDLE, 5.85, "frozen backbone\none pass, stride 8", "#eeeeee"),
    "q": (LEFT, 4.7, "query branch\nconv3x3(F2 ⊕ F3)", "#e8eaf6"),
    "f4": (RIGHT, 4.7, "I_class = B4(F3)\nfrozen layer4", "#eeeeee"),
    "mam": (RIGHT, 3.65, "MAM: pyramid pooling\nbins 1, 2, 3, 6; 5C→C", "#e3f2fd"),
    "sam": (RIGHT, 2.6, "SAM: non-local\nE = cat(F_M, f(O_M))", "#e3f2fd"),
    "map": (RIGHT, 1.45, "few-shot: masked average\npooling, mean over K", "#fff3e0"),
    "ccm": (LEFT, 1.45, "CCM: 1x1→256, 3 residual\nblocks, ASPP, 1x1→2", "#e8f5e9"),
    "y": (LEFT, 0.4, "logits (B, 2, H, W)", "#e8f5e9"),
}
#: (from, to, label, where the label goes along the arrow: 0 at the start, 1 at the end)
EDGES = [
    ("x", "bb", "", 0.5), ("s", "bb", "", 0.5), ("bb", "q", "F2, F3", 0.5),
    ("bb", "f4", "F3", 0.5), ("f4", "mam", "", 0.5), ("mam", "sam", "", 0.5),
    ("sam", "ccm", "zero-shot: the query's E", 0.45), ("sam", "map", "supports' E", 0.5),
    ("map", "ccm", "prototype, tiled", 0.5), ("q", "ccm", "F_query", 0.5), ("ccm", "y", "", 0.5),
]  # fmt: skip


def _edge_point(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where the ray from a box's centre along (dx, dy) leaves the box."""
    t = min(
        BOX_W / 2 / abs(dx) if dx else float("inf"), BOX_H / 2 / abs(dy) if dy else float("inf")
    )
    return x + t * dx, y + t * dy


def draw() -> plt.Figure:
    """The figure (the caller writes and closes it)."""
    fig = plt.figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_axes((0, 0, 1, 1))
    for x, y, text, color in NODES.values():
        ax.add_patch(
            FancyBboxPatch(
                (x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.03",
                facecolor=color, edgecolor="#455a64", linewidth=1.0,
            )
        )  # fmt: skip
        ax.text(x, y, text, ha="center", va="center", fontsize=10, family="DejaVu Sans")
    for a, b, label, where in EDGES:
        (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
        dx, dy = xb - xa, yb - ya
        start, end = _edge_point(xa, ya, dx, dy), _edge_point(xb, yb, -dx, -dy)
        ax.annotate(
            "", xy=end, xytext=start,
            arrowprops=dict(arrowstyle="-|>", color="#37474f", lw=1.2, shrinkA=3, shrinkB=3),
        )  # fmt: skip
        if label:
            lx, ly = start[0] + where * (end[0] - start[0]), start[1] + where * (end[1] - start[1])
            ax.text(
                lx, ly, label, ha="center", va="center", fontsize=9.5, color="#263238",
                style="italic", bbox=dict(boxstyle="round,pad=0.15", facecolor="white", lw=0),
            )  # fmt: skip
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    ax.axis("off")
    return fig


def main() -> None:
    """Draw the diagram and write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also write a PNG here (to look at)")
    args = parser.parse_args()
    fig = draw()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, format="svg", metadata={"Date": None})
    if args.png is not None:
        fig.savefig(args.png, dpi=110)
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
