#!/usr/bin/env python3
"""Train the SCL delay model: inside the container (SageMaker's /opt/ml contract) or on a laptop.

python train.py                                   # SageMaker mode: everything under $OPT_ML_DIR (/opt/ml)
python train.py --data flights.csv --model-dir model/ --hp feature_set=challenge --hp split=random
"""

import sys

from scl_delay.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
