#!/usr/bin/env python3
"""Deploy the registered model version of a merged commit: checks, gate, approval, SageMaker endpoint behind
API Gateway, smoke test, rollback; or list the versions, roll back, tear down.

python deploy.py --commit SHA --deploy-s3 s3://bucket/deploy --serving-role-arn ARN --apigw-role-arn ARN \\
    --smoke-test
python deploy.py --list | --rollback --reason "..." | --teardown [--purge-registry]
python deploy.py --help        # every flag, and the environment variable it falls back to
Exit 0 done, 1 AWS failure, 2 bad input, 3 refused (nothing changed), 4 smoke test failed: previous version
back.
"""

import sys

from scl_delay.aws.cli import deploy_main

if __name__ == "__main__":
    sys.exit(deploy_main())
