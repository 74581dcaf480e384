#!/usr/bin/env python3
"""Deploy a trained model to a SageMaker endpoint behind API Gateway; print the invoke URL.

python deploy.py --state-s3 s3://bucket/state --role-arn ARN --apigw-role-arn ARN --commit SHA
python deploy.py --state-s3 s3://bucket/state --teardown
python deploy.py --help        # every flag, and the environment variable it falls back to
"""

import sys

from scl_delay.aws.cli import deploy_main

if __name__ == "__main__":
    sys.exit(deploy_main())
