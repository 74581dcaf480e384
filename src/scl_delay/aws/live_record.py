"""What is live, and what each commit trained: small JSON documents under one S3 prefix.

    <state>/live.json                 written by deploy.py after a successful deploy; read by training_job.py
                                      (the PR report compares against it) and by the next deploy (gate, no-op)
    <state>/training/<commit>.json    written by training_job.py; deploy.py picks the job for a merged commit

S3 rather than SSM Parameter Store: the documents hold metrics and hyperparameters (SSM standard parameters
stop at 4 KB), the bucket already exists for artifacts, versioning on the bucket gives the deploy history,
and one ``s3:GetObject``/``PutObject`` grant on the prefix is the whole permission.
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from .names import join_s3, parse_s3_uri, slug

LIVE_OBJECT = "live.json"
TRAINING_FOLDER = "training"


def live_uri(state_s3: str) -> str:
    return join_s3(state_s3, LIVE_OBJECT)


def training_record_uri(state_s3: str, commit: str) -> str:
    return join_s3(state_s3, TRAINING_FOLDER, f"{slug(commit) or 'unknown'}.json")


def read_json(s3, uri: str) -> dict | None:
    """The document, or None when the object does not exist.

    Listed first: without ``s3:ListBucket`` on the key itself S3 answers a missing object with 403, not 404,
    and an AccessDenied must stay an error (a gate that cannot read the live record must not pass).
    """
    bucket, key = parse_s3_uri(uri)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not listed or listed[0]["Key"] != key:
        return None
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def write_json(s3, uri: str, doc: dict) -> None:
    bucket, key = parse_s3_uri(uri)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(doc, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )


def delete_object(s3, uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    s3.delete_object(Bucket=bucket, Key=key)


def read_live(s3, state_s3: str) -> dict | None:
    return read_json(s3, live_uri(state_s3))
