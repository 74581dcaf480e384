"""boto3 adapters: launch a SageMaker training job (``training_job``) and ship an endpoint (``deploy``).

Only ``clients`` builds boto3 clients; everything else receives them. Nothing here imports the training or
serving stack, so the launcher installs with boto3 alone (``uv sync --only-group aws``).
"""
