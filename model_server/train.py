"""``python -m model_server.train``: the command; the work lives in ``model_server.training.loop``."""

import sys

from .training.loop import main

if __name__ == "__main__":
    sys.exit(main())
