#!/usr/bin/env python3
"""Launch a SageMaker training job with hyperparameters.json, wait, write training_result.json + report.md.

python training_job.py --image-uri IMAGE --role-arn ARN --data s3://bucket/data/ --output-s3 s3://bucket/out
python training_job.py --help        # every flag, and the environment variable it falls back to
"""

import sys

from scl_delay.aws.cli import training_job_main

if __name__ == "__main__":
    sys.exit(training_job_main())
