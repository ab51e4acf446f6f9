"""``python -m model_server.evaluate``: the command; the work lives in ``model_server.training.evaluation``."""

import sys

from .training.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
