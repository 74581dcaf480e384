#!/usr/bin/env python3
"""Launch a SageMaker training job with hyperparameters.json, wait, register the model in the SageMaker Model
Registry (PendingManualApproval), write training_result.json + report.md.

python training_job.py --image-uri ECR_IMAGE:TAG --training-role-arn ARN --data s3://bucket/data/ \
    --output-s3 s3://bucket/training --pr-number 7
python training_job.py --help        # every flag, and the environment variable it falls back to
Exit 0 registered, 1 the job failed or AWS answered an error, 2 bad input.
"""

import sys

from scl_delay.aws.cli import training_job_main

if __name__ == "__main__":
    sys.exit(training_job_main())
