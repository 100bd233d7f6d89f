#!/usr/bin/env python3
"""Measures whether a running emulator honours create-only-if-absent writes under concurrency:
WRITERS threads release together on a barrier and each tries to create the same new object
with the provider's precondition; exactly one should succeed in every round. Not part of the
suite: run by hand against servers that `start.sh` started, to keep tests/emulators/README.md's
table true when a version changes.

    eval "$(tests/emulators/start.sh "$d")"
    python3 tests/emulators/conditional_writes.py gcs                      # stdlib only
    "$OFFSITE_TEST_AZURE_PYTHON" tests/emulators/conditional_writes.py azure
    "$OFFSITE_TEST_MOTO_PYTHON" tests/emulators/conditional_writes.py s3 "$OFFSITE_TEST_SEAWEEDFS"

Prints, per operation, the rounds in which more than one writer succeeded.
"""
import json
import os
import sys
import threading
import urllib.error
import urllib.request
import uuid

ROUNDS = int(os.environ.get("ROUNDS", "20"))
WRITERS = int(os.environ.get("WRITERS", "8"))
# Azurite's published development account (its README); a loopback emulator, not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def race(attempt):
    """Runs `attempt(i)` in WRITERS threads released together; the number that returned True."""
    barrier = threading.Barrier(WRITERS)
    wins = []

    def run(i):
        barrier.wait()
        try:
            if attempt(i):
                wins.append(i)
        except Exception as e:  # an unexpected error is a loss, and shown
            print(f"  writer {i}: {type(e).__name__}: {e}", file=sys.stderr)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(wins)


def report(what, counts):
    bad = [n for n in counts if n != 1]
    print(f"{what}: {len(counts)} rounds of {WRITERS} writers; rounds with exactly one winner: "
          f"{len(counts) - len(bad)}; winners per round: {counts}")


def gcs():
    base = os.environ["OFFSITE_TEST_GCS"].rstrip("/")
    bucket = "cw-" + uuid.uuid4().hex[:12]
    req = urllib.request.Request(f"{base}/storage/v1/b?project=test",
                                 data=json.dumps({"name": bucket}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()

    def media(key):
        def attempt(i):
            url = (f"{base}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={key}"
                   "&ifGenerationMatch=0")
            r = urllib.request.Request(url, data=f"writer {i}".encode() * 1000, method="POST",
                                       headers={"Content-Type": "application/octet-stream"})
            try:
                urllib.request.urlopen(r).read()
                return True
            except urllib.error.HTTPError as e:
                if e.code == 412:
                    return False
                raise
        return attempt

    report("GCS media insert ifGenerationMatch=0",
           [race(media(f"k{n}")) for n in range(ROUNDS)])


def azure():
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobBlock, BlobServiceClient

    endpoint = os.environ["OFFSITE_TEST_AZURITE"].rstrip("/")
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};")
    service = BlobServiceClient.from_connection_string(conn)
    container = service.create_container("cw-" + uuid.uuid4().hex[:12])

    def put_blob(key):
        def attempt(i):
            try:
                container.upload_blob(key, f"writer {i}".encode() * 1000, overwrite=False)
                return True
            except ResourceExistsError:
                return False
        return attempt

    def put_block_list(key):
        def attempt(i):
            blob = container.get_blob_client(key)
            block = uuid.uuid4().hex
            blob.stage_block(block, f"writer {i}".encode() * 1000)
            try:
                blob.commit_block_list([BlobBlock(block_id=block)],
                                       headers={"If-None-Match": "*"})
                return True
            except ResourceExistsError:
                return False
        return attempt

    report("Azure Put Blob If-None-Match: *",
           [race(put_blob(f"p{n}")) for n in range(ROUNDS)])
    report("Azure Put Block List If-None-Match: *",
           [race(put_block_list(f"b{n}")) for n in range(ROUNDS)])


def s3(endpoint):
    import boto3
    from botocore.exceptions import ClientError

    s3c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="offsite-test", aws_secret_access_key="offsite-test-secret")
    bucket = "cw-" + uuid.uuid4().hex[:12]
    s3c.create_bucket(Bucket=bucket)

    def lost(e):
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")

    def put(key):
        def attempt(i):
            try:
                s3c.put_object(Bucket=bucket, Key=key, Body=f"writer {i}".encode() * 1000,
                               IfNoneMatch="*")
                return True
            except ClientError as e:
                if lost(e):
                    return False
                raise
        return attempt

    def complete(key):
        def attempt(i):
            up = s3c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            etag = s3c.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1,
                                   Body=f"writer {i}".encode() * 1000)["ETag"]
            try:
                s3c.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=up, IfNoneMatch="*",
                    MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]})
                return True
            except ClientError as e:
                if lost(e):
                    return False
                raise
        return attempt

    report(f"S3 PutObject If-None-Match: * at {endpoint}",
           [race(put(f"p{n}")) for n in range(ROUNDS)])
    report(f"S3 CompleteMultipartUpload If-None-Match: * at {endpoint}",
           [race(complete(f"m{n}")) for n in range(ROUNDS)])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "gcs":
        gcs()
    elif what == "azure":
        azure()
    elif what == "s3" and len(sys.argv) > 2:
        s3(sys.argv[2])
    else:
        sys.exit(__doc__)
