"""``python -m fewzero.predict_cli``: the ``fewzero-segment`` command without the console script."""

import sys

from .predict import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
