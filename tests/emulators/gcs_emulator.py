#!/usr/bin/env python3
"""The project's launcher for gcp-storage-emulator (pinned in install.sh), with fixes.

Run it with the emulator venv's python (start.sh does):
    gcs_emulator.py --host 127.0.0.1 --port PORT [--data-dir DIR] [--verbose]
With no --data-dir, everything is kept in memory. GET / answers "OK" once it is serving.

gcp-storage-emulator serves the GCS JSON API, but it lacks things our GCS adapter
(`gcloud-storage` 1.3) and its tests depend on. Rather than forking it, this file imports it,
swaps its object handlers for the ones below, and runs its router on a threaded HTTP/1.1
server. Gaps patched, and why:

  * List pagination: it ignores maxResults/pageToken and returns every object in one page, so
    a client's paging code (and a >1000-object listing) was never exercised. Here: maxResults
    (default and cap 1000, items and prefixes counted together), pageToken/nextPageToken in
    name order, plus prefix, delimiter/prefixes, includeTrailingDelimiter, startOffset,
    endOffset and matchGlob.
  * Preconditions: it ignores ifGenerationMatch (so ifGenerationMatch=0, "create only if
    absent", silently overwrote) and the other if* parameters. Here: ifGenerationMatch,
    ifGenerationNotMatch, ifMetagenerationMatch, ifMetagenerationNotMatch (and the ifSource*
    ones, sourceGeneration, generation) on media, multipart and resumable inserts (checked
    when the session starts and again when it completes), copy/rewrite/compose destinations,
    delete, get, download, patch and update. A failure answers 412 with GCS's JSON error
    (reason conditionNotMet); a failed *NotMatch on a read answers 304, as GCS does.
  * Media downloads: it sends no x-goog-generation/x-goog-metageneration/
    x-goog-stored-content-length, drops x-goog-hash on ranged reads, ignores suffix ranges
    (bytes=-N) and never answers 416. Here all of these are sent and handled; 206 carries
    Content-Range.
  * Resumable uploads: the session URL is built from the Host header as received (port
    included), always on /upload/storage/v1 so that a session started on /storage/v1 works
    too. Chunked PUTs with `bytes A-B/*` and `bytes A-B/TOTAL` answer 308 with
    `Range: bytes=0-N` (no Range at all while nothing is stored, as GCS does: the emulator
    claimed bytes=0-0), a re-sent chunk that overlaps what is stored is accepted (the
    emulator answered 400), a chunk starting past the stored end is refused with 400, status
    queries `bytes */*` and `bytes */TOTAL` answer 308 + Range (or complete the upload when
    TOTAL bytes are stored), a finished session answers 200 with the object again (the
    emulator forgot it: 404), and DELETE on the session cancels it with 499. A request sent
    with `X-GUploader-No-308: yes` (Google's Go API client, e.g. rclone, sends it on every
    chunk) gets 200 + `X-Http-Status-Code-Override: 308` (and the Range) instead of a bare
    308, as from GCS; that client refuses a bare 308 ("unexpected 308 response status code").
  * Object resources: new objects get metageneration 1 (the emulator started multipart and
    copied objects at 2), size is always a string (compose gave a number), crc32c and md5Hash
    are computed (composed objects have no md5Hash, as in GCS), storageClass from the upload
    metadata is kept (default: the bucket's class; unknown classes are refused), user
    metadata, contentEncoding from the query (the emulator stored it as contentType),
    updated/timeCreated, generation strictly increasing, and md5Hash/crc32c given in upload
    metadata are checked. The data part of a multipart upload is split by hand, byte-exact,
    as RFC 2046 says (the emulator used the email parser and gave text/plain to a part with
    no Content-Type): a part with no header lines (Go's API client, e.g. rclone, sends the
    media part so when it has no content type) starts right after its blank line, and its
    body runs to the CRLF before the next boundary, blank lines in the data included.
  * Holds and retention (not in the emulator at all): temporaryHold, eventBasedHold (and the
    bucket's defaultEventBasedHold), the bucket retentionPolicy (retentionExpirationTime) and
    object retention (`retention`, on buckets created with enableObjectRetention=true; Unlocked
    retention can be shortened or removed with overrideUnlockedRetention=true) refuse delete
    and overwrite with 403 retentionPolicyNotMet. Bucket insert keeps the body's fields (the
    emulator kept only the name).
  * Errors: every 4xx/5xx carries GCS's JSON error body ({"error": {"code", "message",
    "errors": [{"reason", ...}]}}), which gcloud-storage parses; the emulator often sent an
    empty body, which the client reports as a bare HTTP error.
  * Concurrency: the emulator serves one connection at a time over HTTP/1.0. Here a
    ThreadingHTTPServer speaks HTTP/1.1 with keep-alive; request bodies are read and responses
    written outside a global lock that serializes only the handlers (the store is not
    thread-safe). In memory mode the emulator's whole-store JSON snapshot after every write
    (quadratic in the object count) is skipped, as nothing reads it back.

Still missing (see README.md): object versioning (only live generations; soft-deleted ones
through the emulator's own softDeleted listing), rewrite in several calls (rewriteToken), the
XML API, decompressive transcoding of gzip objects, auth, and batch requests keep the
emulator's unpatched semantics.
"""

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.parse
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.utils import format_datetime
from functools import partial
from http import HTTPStatus
from http.server import ThreadingHTTPServer

import google_crc32c
from gcp_storage_emulator import server as emu_server
from gcp_storage_emulator.exceptions import BadRequest, Conflict, NotFound
from gcp_storage_emulator.gcs_glob import gcs_glob_match
from gcp_storage_emulator.handlers import buckets as emu_buckets
from gcp_storage_emulator.handlers import objects as emu_objects
from gcp_storage_emulator.storage import Storage

logger = logging.getLogger("offsite.gcs_emulator")

Status = namedtuple("Status", "value phrase")
RESUME_INCOMPLETE = Status(308, "Resume Incomplete")
CLIENT_CLOSED_REQUEST = Status(499, "Client Closed Request")

STORAGE_CLASSES = {
    "STANDARD",
    "NEARLINE",
    "COLDLINE",
    "ARCHIVE",
    "MULTI_REGIONAL",
    "REGIONAL",
    "DURABLE_REDUCED_AVAILABILITY",
}
# Object fields a client may set (insert metadata, patch, update, copy/rewrite body).
WRITABLE = (
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "contentType",
    "customTime",
    "metadata",
    "acl",
    "temporaryHold",
    "eventBasedHold",
    "retention",
)
MAX_RESULTS = 1000

LOCK = threading.RLock()  # serializes handlers: the emulator's Storage is not thread-safe
SESSIONS = {}  # resumable upload_id -> dict (see _resumable_start)
_last_generation = 0


class HttpError(Exception):
    def __init__(self, code, reason, message, location=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.location = code, reason, message, location


class NotModified(Exception):
    pass


def error_body(code, reason, message, location=None):
    item = {"domain": "global", "reason": reason, "message": message}
    if location:
        item["locationType"] = "header" if location == "If-Match" else "parameter"
        item["location"] = location
    return {"error": {"code": code, "message": message, "errors": [item]}}


def set_error(response, code, reason, message, location=None):
    response.status = _status(code)
    response.json(error_body(code, reason, message, location))


def _status(code):
    try:
        return HTTPStatus(code)
    except ValueError:
        return Status(code, "Unknown")


def precondition_failed():
    return HttpError(
        412,
        "conditionNotMet",
        "At least one of the pre-conditions you specified did not hold.",
        "If-Match",
    )


def no_such_object(bucket, name):
    return HttpError(404, "notFound", "No such object: {}/{}".format(bucket, name))


def no_such_bucket():
    return HttpError(404, "notFound", "The specified bucket does not exist.")


def bad_request(message):
    return HttpError(400, "invalid", message)


# ---------------------------------------------------------------- helpers


def q(request, name):
    values = request.query.get(name)
    return values[0] if values else None


def q_bool(request, name):
    value = q(request, name)
    return value is not None and value.lower() in ("1", "true", "yes")


def q_int(request, name):
    value = q(request, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request("Invalid value for {}: {}".format(name, value))


def now_dt():
    return datetime.now(timezone.utc)


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "{:03d}Z".format(dt.microsecond // 1000)


def parse_rfc3339(value):
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_request("Invalid RFC 3339 time: {}".format(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def next_generation():
    """Microseconds since the epoch like GCS, strictly increasing across all objects."""
    global _last_generation
    _last_generation = max(time.time_ns() // 1000, _last_generation + 1)
    return _last_generation


def crc32c_b64(data):
    return base64.b64encode(google_crc32c.Checksum(bytes(data)).digest()).decode("ascii")


def md5_b64(data):
    return base64.b64encode(hashlib.md5(bytes(data)).digest()).decode("ascii")


def etag(obj):
    raw = "{}/{}".format(obj["generation"], obj["metageneration"]).encode()
    return base64.b64encode(hashlib.sha1(raw).digest()[:8]).decode("ascii")


def quote_name(name):
    return urllib.parse.quote(name, safe="")


def get_bucket(storage, bucket_name):
    bucket = storage.buckets.get(bucket_name)
    if bucket is None:
        raise no_such_bucket()
    return bucket


def live_object(storage, bucket_name, name):
    return storage.objects.get(bucket_name, {}).get(name)


def require_object(storage, bucket_name, name, generation=None):
    get_bucket(storage, bucket_name)
    obj = live_object(storage, bucket_name, name)
    if obj is None or (generation is not None and int(obj["generation"]) != generation):
        raise no_such_object(bucket_name, name)
    return obj


def render(obj, request):
    """The object resource as GCS returns it (no acl unless projection=full)."""
    out = dict(obj)
    if q(request, "projection") != "full":
        out.pop("acl", None)
        out.pop("owner", None)
    return out


# ---------------------------------------------------------------- preconditions


def check_preconditions(query, current, prefix="if", read=False):
    """GCS's generation/metageneration preconditions against `current` (None: no live object).

    `query` maps parameter names to lists of values (request.query or a session's copy).
    0 stands for "no live object": ifGenerationMatch=0 passes only if there is none,
    ifGenerationNotMatch=0 only if there is one. A failed *Match is a 412; a failed *NotMatch
    is a 304 on reads and a 412 on writes.
    """

    def value(name):
        values = query.get(prefix + name)
        if not values:
            return None
        try:
            return int(values[0])
        except ValueError:
            raise bad_request("Invalid value for {}: {}".format(prefix + name, values[0]))

    generation = int(current["generation"]) if current else 0
    metageneration = int(current["metageneration"]) if current else 0

    def not_match_failed():
        return NotModified() if read else precondition_failed()

    expected = value("GenerationMatch")
    if expected is not None and expected != generation:
        raise precondition_failed()
    expected = value("MetagenerationMatch")
    if expected is not None and expected != metageneration:
        raise precondition_failed()
    unexpected = value("GenerationNotMatch")
    if unexpected is not None and (current is None or unexpected == generation):
        raise not_match_failed()
    unexpected = value("MetagenerationNotMatch")
    if unexpected is not None and (current is None or unexpected == metageneration):
        raise not_match_failed()


# ---------------------------------------------------------------- holds and retention


def check_mutable(storage, obj, action="deleted or overwritten"):
    """403 if a hold or a retention period protects `obj` from deletion or replacement."""
    if obj is None:
        return
    label = "{}/{}".format(obj["bucket"], obj["name"])
    for field, kind in (("temporaryHold", "Temporary"), ("eventBasedHold", "Event-Based")):
        if obj.get(field):
            raise HttpError(
                403,
                "retentionPolicyNotMet",
                "Object '{}' is under active {} hold and cannot be {} until hold is "
                "removed.".format(label, kind, action),
            )
    until = []
    if obj.get("retentionExpirationTime"):
        until.append(parse_rfc3339(obj["retentionExpirationTime"]))
    retention = obj.get("retention") or {}
    if retention.get("retainUntilTime"):
        until.append(parse_rfc3339(retention["retainUntilTime"]))
    if until and max(until) > now_dt():
        raise HttpError(
            403,
            "retentionPolicyNotMet",
            "Object '{}' is subject to bucket's retention policy or object retention and "
            "cannot be {} until {}".format(label, action, rfc3339(max(until))),
        )


def retention_period(bucket):
    policy = bucket.get("retentionPolicy") or {}
    try:
        return int(policy.get("retentionPeriod") or 0)
    except (TypeError, ValueError):
        return 0


def apply_retention(request, bucket, obj, value, existing=None):
    """Sets obj['retention'] from a client value, enforcing GCS's rules for it."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise bad_request("Invalid retention: {}".format(value))
    if value and (bucket.get("objectRetention") or {}).get("mode") != "Enabled":
        raise bad_request("Object retention is not enabled on bucket {}.".format(bucket["name"]))
    old = (existing or {}).get("retention") or {}
    if old:
        old_until = parse_rfc3339(old["retainUntilTime"]) if old.get("retainUntilTime") else None
        new_until = value.get("retainUntilTime")
        new_until = parse_rfc3339(new_until) if new_until else None
        weakened = not value or (old_until and (new_until is None or new_until < old_until))
        weakened = weakened or (old.get("mode") == "Locked" and value.get("mode") != "Locked")
        if weakened and old_until and old_until > now_dt():
            if old.get("mode") == "Locked" or not q_bool(request, "overrideUnlockedRetention"):
                raise HttpError(
                    403,
                    "forbidden",
                    "Object retention of {}/{} cannot be reduced or removed{}.".format(
                        obj["bucket"],
                        obj["name"],
                        " (Locked)" if old.get("mode") == "Locked"
                        else " without overrideUnlockedRetention=true",
                    ),
                )
    if value:
        mode = value.get("mode")
        if mode not in ("Unlocked", "Locked") or not value.get("retainUntilTime"):
            raise bad_request("retention needs mode Unlocked or Locked and retainUntilTime.")
        until = parse_rfc3339(value["retainUntilTime"])
        obj["retention"] = {"mode": mode, "retainUntilTime": rfc3339(until)}
    else:
        obj.pop("retention", None)


# ---------------------------------------------------------------- object creation


def apply_writable(request, bucket, obj, fields, existing=None, patch=True):
    """Copies client-settable fields into obj. patch: a null removes the field."""
    for key in WRITABLE:
        if key not in fields:
            continue
        value = fields[key]
        if key == "retention":
            apply_retention(request, bucket, obj, value, existing)
        elif key == "metadata":
            if value is None:
                obj.pop("metadata", None)
                continue
            if not isinstance(value, dict):
                raise bad_request("Invalid metadata: {}".format(value))
            merged = dict(obj.get("metadata") or {}) if patch else {}
            for mkey, mvalue in value.items():
                if mvalue is None:
                    merged.pop(mkey, None)
                else:
                    merged[mkey] = mvalue if isinstance(mvalue, str) else json.dumps(mvalue)
            if merged:
                obj["metadata"] = merged
            else:
                obj.pop("metadata", None)
        elif key == "acl":
            if value is None:
                obj["acl"] = []
            else:
                obj["acl"] = emu_objects._normalize_object_acl_entries(
                    obj["bucket"], obj["name"], value
                )
        elif value is None:
            obj.pop(key, None)
        elif key in ("temporaryHold", "eventBasedHold"):
            obj[key] = bool(value)
        elif key == "customTime":
            obj[key] = rfc3339(parse_rfc3339(value))
        else:
            obj[key] = value


def store_object(request, storage, bucket_name, name, data, fields, content_type,
                 query=None, header_hash=None, composite=None):
    """Creates a new generation of bucket_name/name holding `data`; returns the resource.

    fields: the client's object metadata (upload metadata, copy/rewrite body, compose
    destination). query: the request parameters holding the preconditions (a resumable
    session passes the ones given when it started). header_hash: an X-Goog-Hash header value.
    composite: component count for compose (GCS gives composite objects no md5Hash).
    """
    bucket = get_bucket(storage, bucket_name)
    if not name:
        raise HttpError(400, "required", "Required parameter: name")
    if len(name.encode("utf-8")) > 1024:
        raise bad_request("The object name is too long.")
    current = live_object(storage, bucket_name, name)
    check_preconditions(request.query if query is None else query, current)
    check_mutable(storage, current, "overwritten")
    fields = fields or {}

    data = bytes(data)
    crc = crc32c_b64(data)
    md5 = md5_b64(data)
    given = []
    if fields.get("crc32c"):
        given.append(("CRC32C", fields["crc32c"], crc))
    if fields.get("md5Hash") and composite is None:
        given.append(("MD5", fields["md5Hash"], md5))
    for part in (header_hash or "").split(","):
        algo, _, value = part.strip().partition("=")
        if algo.lower() == "crc32c" and value:
            given.append(("CRC32C", value, crc))
        elif algo.lower() == "md5" and value:
            given.append(("MD5", value, md5))
    for algo, provided, computed in given:
        if provided != computed:
            raise bad_request(
                'Provided {} hash "{}" doesn\'t match calculated {} hash "{}".'.format(
                    algo, provided, algo, computed
                )
            )

    storage_class = fields.get("storageClass") or bucket.get("storageClass") or "STANDARD"
    if storage_class not in STORAGE_CLASSES:
        raise bad_request("Invalid storage class: {}".format(storage_class))

    generation = next_generation()
    now = now_dt()
    base_url = request.base_url
    obj = {
        "kind": "storage#object",
        "id": "{}/{}/{}".format(bucket_name, name, generation),
        "selfLink": "{}/storage/v1/b/{}/o/{}".format(base_url, bucket_name, quote_name(name)),
        "mediaLink": "{}/download/storage/v1/b/{}/o/{}?generation={}&alt=media".format(
            base_url, bucket_name, quote_name(name), generation
        ),
        "name": name,
        "bucket": bucket_name,
        "generation": str(generation),
        "metageneration": "1",
        "contentType": fields.get("contentType") or content_type or "application/octet-stream",
        "storageClass": storage_class,
        "size": str(len(data)),
        "crc32c": crc,
        "timeCreated": rfc3339(now),
        "updated": rfc3339(now),
        "timeStorageClassUpdated": rfc3339(now),
        "acl": [],
    }
    if composite is None:
        obj["md5Hash"] = md5
    else:
        obj["componentCount"] = composite
    fields = dict(fields)
    fields.pop("contentType", None)
    if fields.get("eventBasedHold") is None and bucket.get("defaultEventBasedHold"):
        fields["eventBasedHold"] = True
    apply_writable(request, bucket, obj, fields)
    if q(request, "contentEncoding") and not obj.get("contentEncoding"):
        obj["contentEncoding"] = q(request, "contentEncoding")
    period = retention_period(bucket)
    if period:
        obj["retentionExpirationTime"] = rfc3339(now + timedelta(seconds=period))
    obj["etag"] = etag(obj)
    storage.create_file(bucket_name, name, data, obj)
    return obj


# ---------------------------------------------------------------- request bodies


def _line_end(raw, pos):
    """Length of the line break (CRLF, or a bare LF) at raw[pos], else 0."""
    if raw.startswith(b"\r\n", pos):
        return 2
    if raw.startswith(b"\n", pos):
        return 1
    return 0


def parse_multipart_related(raw, content_type):
    """Splits a multipart upload body into (metadata dict, media bytes, media content type).

    RFC 2046 section 5.1.1: the body is a preamble, then each part introduced by the line
    `--BOUNDARY` (transport padding allowed before its CRLF), then the part's header lines,
    CRLF CRLF, and its body; the CRLF that precedes the next `--BOUNDARY` belongs to that
    delimiter, not to the body; `--BOUNDARY--` closes. A part with no header lines starts with
    its blank line at once (`--BOUNDARY CRLF CRLF body`, as Go's mime/multipart writes the media
    part when it has no Content-Type): its body is everything after that CRLF, blank lines in
    the data included. Byte-exact; bare LF line breaks are tolerated.
    """
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("multipart body without boundary")
    dash_boundary = b"--" + match.group(1).encode("latin-1")
    raw = bytes(raw)
    # The first delimiter: at the very start, or after the preamble's last line break.
    if raw.startswith(dash_boundary):
        pos = len(dash_boundary)
    else:
        found = raw.find(b"\n" + dash_boundary)
        if found < 0:
            raise bad_request("multipart body without its first boundary")
        pos = found + 1 + len(dash_boundary)
    parts = []
    while True:
        if raw.startswith(b"--", pos):  # the close delimiter
            break
        while pos < len(raw) and raw[pos] in b" \t":  # transport padding
            pos += 1
        eol = _line_end(raw, pos)
        if not eol:
            raise bad_request("multipart boundary line not followed by a line break")
        pos += eol
        eol = _line_end(raw, pos)
        if eol:  # no header lines: the body starts after this blank line
            head, body_start = b"", pos + eol
        else:
            ends = [(i, n) for i, n in ((raw.find(b"\r\n\r\n", pos), 4),
                                        (raw.find(b"\n\n", pos), 2)) if i >= 0]
            if not ends:
                raise bad_request("multipart part headers not ended by a blank line")
            cut, n = min(ends)
            head, body_start = raw[pos:cut], cut + n
        # The body ends at the line break before the next delimiter; the search starts at
        # the line break that ended the headers, so that an empty body written without its
        # own line break still parses.
        search_from = max(pos, body_start - (2 if raw.startswith(b"\r\n", body_start - 2)
                                             else 1))
        end = raw.find(b"\r\n" + dash_boundary, search_from)
        if end >= 0:
            next_pos = end + 2 + len(dash_boundary)
        else:
            end = raw.find(b"\n" + dash_boundary, search_from)
            if end < 0:
                raise bad_request("multipart body not closed by its boundary")
            next_pos = end + 1 + len(dash_boundary)
        headers = {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, raw[body_start:end]))  # empty if end < body_start
        pos = next_pos
    if len(parts) != 2:
        raise bad_request("A multipart upload needs exactly 2 parts, got {}".format(len(parts)))
    try:
        meta = json.loads(parts[0][1] or b"{}")
    except ValueError:
        raise bad_request("The metadata part is not valid JSON")
    return {"meta": meta, "content": parts[1][1], "content-type": parts[1][0].get("content-type")}


def read_raw(handler):
    """The request body. Unlike the emulator's reader, this consumes the whole chunked
    encoding (chunk extensions, trailers and the final CRLF): leaving that CRLF unread broke
    the next request on a keep-alive connection, and reqwest sends streamed bodies chunked."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        parts = []
        while True:
            line = handler.rfile.readline(65537)
            if not line:
                raise bad_request("Truncated chunked body")
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise bad_request("Invalid chunk size")
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(65537)  # the CRLF closing the chunk
    length = handler.headers.get("Content-Length")
    return handler.rfile.read(int(length)) if length else b""


def read_body(request):
    """Reads the whole request body before any lock is taken; sets request.data."""
    handler = request._request_handler
    raw = emu_server._decode_raw_data(read_raw(handler), handler) or b""
    request.raw = raw
    content_type = handler.headers.get("Content-Type") or "application/octet-stream"
    data = None
    if raw:
        if content_type.startswith("application/json") and "upload_id" not in request.query:
            try:
                data = json.loads(raw)
            except ValueError:
                raise bad_request("Parse Error")
        elif content_type.startswith("multipart/mixed"):
            message = BytesParser().parsebytes(
                ("Content-Type:" + content_type + "\r\n\r\n").encode() + raw
            )
            data = [emu_server._parse_batch_item(item) for item in message.get_payload()]
        elif content_type.startswith("multipart/"):
            data = parse_multipart_related(raw, content_type)
        else:
            data = raw
    request._data = data


def body_dict(request):
    return request.data if isinstance(request.data, dict) else {}


# ---------------------------------------------------------------- objects: insert


def insert(request, response, storage, *args, **kwargs):
    upload_type = q(request, "uploadType")
    bucket_name = request.params["bucket_name"]
    if upload_type == "resumable":
        if "upload_id" in request.query:  # some clients POST their chunks
            return upload_chunk(request, response, storage)
        return resumable_start(request, response, storage)
    if upload_type == "media":
        name = q(request, "name")
        obj = store_object(
            request, storage, bucket_name, name, request.raw, {},
            request.get_header("Content-Type"),
            header_hash=request.get_header("X-Goog-Hash"),
        )
    elif upload_type == "multipart":
        if not isinstance(request.data, dict) or "meta" not in request.data:
            raise bad_request("uploadType=multipart needs a multipart body")
        meta = request.data["meta"]
        name = q(request, "name") or meta.get("name")
        obj = store_object(
            request, storage, bucket_name, name, request.data["content"], meta,
            request.data.get("content-type"),
            header_hash=request.get_header("X-Goog-Hash"),
        )
    else:
        raise bad_request("Invalid uploadType: {}".format(upload_type))
    response.json(render(obj, request))


# ---------------------------------------------------------------- objects: resumable uploads

PRECONDITION_PARAMS = (
    "ifGenerationMatch",
    "ifGenerationNotMatch",
    "ifMetagenerationMatch",
    "ifMetagenerationNotMatch",
    "contentEncoding",
    "projection",
    "overrideUnlockedRetention",
)


def resumable_start(request, response, storage):
    bucket_name = request.params["bucket_name"]
    get_bucket(storage, bucket_name)
    meta = body_dict(request)
    name = q(request, "name")
    if name and meta.get("name") and name != meta["name"]:
        raise bad_request(
            "Value '{}' in content does not agree with value '{}'.".format(meta["name"], name)
        )
    name = name or meta.get("name")
    if not name:
        raise HttpError(400, "required", "Required parameter: name")
    # GCS evaluates the preconditions when the upload completes; checking them here as well
    # fails an upload that cannot succeed before its data is sent.
    check_preconditions(request.query, live_object(storage, bucket_name, name))
    total = request.get_header("X-Upload-Content-Length")
    upload_id = secrets.token_urlsafe(24)
    SESSIONS[upload_id] = {
        "bucket": bucket_name,
        "name": name,
        "meta": meta,
        "content_type": request.get_header("X-Upload-Content-Type"),
        "query": {k: v for k, v in request.query.items() if k in PRECONDITION_PARAMS},
        "total": int(total) if total else None,
        "buffer": bytearray(),
        "done": None,
    }
    # Host as received (with its port): the URL works for whoever reached us, on any port.
    response["Location"] = "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}" \
        "&upload_id={}".format(request.base_url, bucket_name, quote_name(name), upload_id)
    response.write_file(b"", content_type=None)


def resume_incomplete(request, response, session):
    """308 Resume Incomplete with the Range stored so far. A client that sends
    `X-GUploader-No-308: yes` (Google's Go API client does: to Go's HTTP stack, 308 is a
    Permanent Redirect) gets, as from GCS, 200 with `X-Http-Status-Code-Override: 308`."""
    if (request.get_header("X-GUploader-No-308") or "").strip().lower() == "yes":
        response.status = HTTPStatus.OK
        response["X-Http-Status-Code-Override"] = "308"
    else:
        response.status = RESUME_INCOMPLETE
    stored = len(session["buffer"])
    if stored:
        response["Range"] = "bytes=0-{}".format(stored - 1)
    response.write_file(b"", content_type=None)


def resumable_finish(request, response, storage, upload_id, session):
    class SessionRequest:  # the session's parameters, this request's Host
        base_url = request.base_url
        query = session["query"]

    try:
        obj = store_object(
            SessionRequest, storage, session["bucket"], session["name"],
            session["buffer"], session["meta"], session["content_type"],
            query=session["query"], header_hash=request.get_header("X-Goog-Hash"),
        )
    except HttpError:
        SESSIONS.pop(upload_id, None)  # a failed finalization ends the session, as in GCS
        raise
    session["done"] = obj
    session["buffer"] = bytearray()
    response.json(render(obj, SessionRequest))


CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+|\*)|\*)/(\d+|\*)")


def upload_chunk(request, response, storage, *args, **kwargs):
    upload_id = q(request, "upload_id")
    session = SESSIONS.get(upload_id)
    if session is None:
        raise HttpError(404, "notFound", "No such upload session: {}".format(upload_id))
    if session["done"] is not None:
        response.json(session["done"])
        return
    data = request.raw
    header = (request.get_header("Content-Range") or "").strip()
    if not header:
        # The whole object in one request.
        session["buffer"] = bytearray(data)
        return resumable_finish(request, response, storage, upload_id, session)
    match = CONTENT_RANGE.fullmatch(header)
    if not match:
        raise bad_request("Invalid Content-Range: {}".format(header))
    first, last, total = match.groups()
    total = None if total == "*" else int(total)
    if total is not None and session["total"] is not None and total != session["total"]:
        raise bad_request(
            "X-Upload-Content-Length {} does not match the total {} in Content-Range".format(
                session["total"], total
            )
        )
    if total is not None:
        session["total"] = total
    stored = len(session["buffer"])

    if first is None:  # bytes */TOTAL or bytes */*: a status query, or finalization
        if total is not None:
            if stored == total:
                return resumable_finish(request, response, storage, upload_id, session)
            if stored > total:
                raise bad_request(
                    "Content-Range total {} is less than the {} bytes received".format(
                        total, stored
                    )
                )
        return resume_incomplete(request, response, session)

    first = int(first)
    last = first + len(data) - 1 if last == "*" else int(last)
    if last < first or last - first + 1 != len(data):
        raise bad_request(
            "Content-Range {} does not match the {} bytes sent".format(header, len(data))
        )
    if total is not None and last >= total:
        raise bad_request("Content-Range {}: last byte past the total".format(header))
    if first > stored:
        raise bad_request(
            "Invalid request. According to the Content-Range header, the upload offset is {} "
            "byte(s), which exceeds already uploaded size of {} byte(s).".format(first, stored)
        )
    # A re-sent chunk may overlap what is stored already: only its new tail is appended.
    session["buffer"] += data[stored - first:]
    if total is not None and len(session["buffer"]) == total:
        return resumable_finish(request, response, storage, upload_id, session)
    return resume_incomplete(request, response, session)


def upload_cancel(request, response, storage, *args, **kwargs):
    upload_id = q(request, "upload_id")
    if SESSIONS.pop(upload_id, None) is None:
        raise HttpError(404, "notFound", "No such upload session: {}".format(upload_id))
    response.status = CLIENT_CLOSED_REQUEST
    response.write_file(b"", content_type=None)


# ---------------------------------------------------------------- objects: read


def get(request, response, storage, *args, **kwargs):
    if q(request, "alt") == "media":
        return download(request, response, storage)
    bucket_name, name = request.params["bucket_name"], request.params["object_id"]
    if q_bool(request, "softDeleted"):
        return emu_objects.get(request, response, storage)
    obj = require_object(storage, bucket_name, name, q_int(request, "generation"))
    check_preconditions(request.query, obj, read=True)
    response.json(render(obj, request))


RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def download(request, response, storage, *args, **kwargs):
    bucket_name, name = request.params["bucket_name"], request.params["object_id"]
    obj = require_object(storage, bucket_name, name, q_int(request, "generation"))
    check_preconditions(request.query, obj, read=True)
    data = storage.get_file(bucket_name, name)
    size = len(data)

    response["x-goog-generation"] = obj["generation"]
    response["x-goog-metageneration"] = obj["metageneration"]
    response["x-goog-stored-content-length"] = str(size)
    response["x-goog-stored-content-encoding"] = obj.get("contentEncoding") or "identity"
    response["x-goog-storage-class"] = obj.get("storageClass", "STANDARD")
    hashes = ["crc32c=" + obj["crc32c"]]
    if obj.get("md5Hash"):
        hashes.append("md5=" + obj["md5Hash"])
    response["x-goog-hash"] = ",".join(hashes)  # of the whole object, also on ranged reads
    response["ETag"] = '"{}"'.format(obj["etag"])
    response["Last-Modified"] = format_datetime(parse_rfc3339(obj["updated"]), usegmt=True)
    response["Accept-Ranges"] = "bytes"
    for header, field in (
        ("Content-Disposition", "contentDisposition"),
        ("Content-Language", "contentLanguage"),
        ("Cache-Control", "cacheControl"),
    ):
        if obj.get(field):
            response[header] = obj[field]
    if "response-content-disposition" in request.query:
        response["Content-Disposition"] = q(request, "response-content-disposition")
    for key, value in (obj.get("metadata") or {}).items():
        response["x-goog-meta-{}".format(key)] = str(value)

    match = RANGE.fullmatch((request.get_header("Range") or "").strip())
    if match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        if first:
            first = int(first)
            last = min(int(last), size - 1) if last else size - 1
            valid = first <= (int(match.group(2)) if match.group(2) else first)
        else:  # bytes=-N: the last N bytes
            first, last = max(0, size - int(last)), size - 1
            valid = int(match.group(2)) > 0
        if valid and (first >= size or size == 0):
            response.status = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
            response["Content-Range"] = "bytes */{}".format(size)
            response.json(error_body(416, "requestedRangeNotSatisfiable",
                                     "Request range not satisfiable"))
            return
        if valid:
            response.status = HTTPStatus.PARTIAL_CONTENT
            response["Content-Range"] = "bytes {}-{}/{}".format(first, last, size)
            data = data[first:last + 1]
    response.write_file(data, content_type=obj.get("contentType") or "application/octet-stream")


def ls(request, response, storage, *args, **kwargs):
    bucket_name = request.params["bucket_name"]
    get_bucket(storage, bucket_name)
    prefix = q(request, "prefix") or ""
    delimiter = q(request, "delimiter")
    match_glob = q(request, "matchGlob")
    start_offset = q(request, "startOffset")
    end_offset = q(request, "endOffset")
    trailing = q_bool(request, "includeTrailingDelimiter")
    max_results = q_int(request, "maxResults")
    if max_results is None:
        max_results = MAX_RESULTS
    if max_results < 1:
        raise bad_request("Invalid value for maxResults: {}".format(max_results))
    max_results = min(max_results, MAX_RESULTS)
    if match_glob is not None and delimiter not in (None, "/"):
        raise bad_request("When listing with a glob pattern, the only supported delimiter is '/'.")
    after = None
    token = q(request, "pageToken")
    if token:
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
        except (ValueError, TypeError):
            raise bad_request("Invalid pageToken")

    if q_bool(request, "softDeleted"):
        candidates = storage._list_soft_deleted_candidates(bucket_name, prefix or None)
    else:
        candidates = storage._list_live_candidates(bucket_name, prefix or None)

    entries = {}  # sort key -> ("item", obj) | ("prefix", str)
    for name, obj in candidates:
        if start_offset is not None and name < start_offset:
            continue
        if end_offset is not None and name >= end_offset:
            continue
        if match_glob is not None and not gcs_glob_match(match_glob, name):
            continue
        if delimiter:
            rest = name[len(prefix):]
            cut = rest.find(delimiter)
            if cut >= 0:
                folder = prefix + rest[:cut + len(delimiter)]
                if match_glob is None or gcs_glob_match(match_glob, folder):
                    entries[(folder, -1)] = ("prefix", folder)
                if not (trailing and cut + len(delimiter) == len(rest)):
                    continue
        entries[(name, int(obj.get("generation") or 0))] = ("item", obj)

    keys = sorted(k for k in entries if after is None or k > after)
    page = keys[:max_results]
    result = {"kind": "storage#objects"}
    items = [render(entries[k][1], request) for k in page if entries[k][0] == "item"]
    prefixes = [entries[k][1] for k in page if entries[k][0] == "prefix"]
    if items:
        result["items"] = items
    if prefixes:
        result["prefixes"] = prefixes
    if len(keys) > len(page):
        result["nextPageToken"] = base64.urlsafe_b64encode(
            json.dumps(list(page[-1])).encode()
        ).decode()
    response.json(result)


# ---------------------------------------------------------------- objects: change


def delete(request, response, storage, *args, **kwargs):
    bucket_name, name = request.params["bucket_name"], request.params["object_id"]
    obj = require_object(storage, bucket_name, name, q_int(request, "generation"))
    check_preconditions(request.query, obj)
    check_mutable(storage, obj, "deleted")
    storage.delete_file(bucket_name, name)
    response.status = HTTPStatus.NO_CONTENT
    response.write_file(b"", content_type=None)


def _change_metadata(request, response, storage, replace):
    bucket_name, name = request.params["bucket_name"], request.params["object_id"]
    obj = require_object(storage, bucket_name, name, q_int(request, "generation"))
    check_preconditions(request.query, obj)
    fields = body_dict(request)
    bucket = get_bucket(storage, bucket_name)
    updated = dict(obj)
    if replace:  # objects.update: fields left out of the body are cleared
        fields = {key: fields.get(key) for key in WRITABLE}
        if fields.get("acl") is None:
            fields.pop("acl")
        if fields.get("retention") is None and not q_bool(request, "overrideUnlockedRetention"):
            fields.pop("retention")  # keep retention unless explicitly overridden
        if not fields.get("contentType"):
            fields["contentType"] = "application/octet-stream"
    apply_writable(request, bucket, updated, fields, existing=obj, patch=not replace)
    if "storageClass" in fields and fields["storageClass"] != obj.get("storageClass"):
        raise bad_request("The storage class of an object changes only by rewriting it.")
    updated["metageneration"] = str(int(obj["metageneration"]) + 1)
    updated["updated"] = rfc3339(now_dt())
    updated["etag"] = etag(updated)
    storage.patch_object(bucket_name, name, updated)
    response.json(render(updated, request))


def patch(request, response, storage, *args, **kwargs):
    _change_metadata(request, response, storage, replace=False)


def update(request, response, storage, *args, **kwargs):
    _change_metadata(request, response, storage, replace=True)


def _copy_common(request, storage):
    src_bucket, src_name = request.params["bucket_name"], request.params["object_id"]
    dst_bucket, dst_name = request.params["dest_bucket_name"], request.params["dest_object_id"]
    src = require_object(storage, src_bucket, src_name, q_int(request, "sourceGeneration"))
    check_preconditions(request.query, src, prefix="ifSource")
    get_bucket(storage, dst_bucket)
    fields = {key: src[key] for key in WRITABLE if key in src and key not in
              ("acl", "temporaryHold", "eventBasedHold", "retention")}
    fields["storageClass"] = None  # the destination bucket's default unless the body says
    fields.update(body_dict(request))
    fields.pop("name", None)
    fields.pop("bucket", None)
    if not fields.get("storageClass"):
        fields.pop("storageClass", None)
    return store_object(
        request, storage, dst_bucket, dst_name, storage.get_file(src_bucket, src_name),
        fields, src.get("contentType"),
    )


def copy(request, response, storage, *args, **kwargs):
    response.json(render(_copy_common(request, storage), request))


def rewrite(request, response, storage, *args, **kwargs):
    obj = _copy_common(request, storage)
    response.json({
        "kind": "storage#rewriteResponse",
        "totalBytesRewritten": obj["size"],
        "objectSize": obj["size"],
        "done": True,
        "resource": render(obj, request),
    })


def compose(request, response, storage, *args, **kwargs):
    bucket_name, name = request.params["bucket_name"], request.params["object_id"]
    get_bucket(storage, bucket_name)
    body = body_dict(request)
    sources = body.get("sourceObjects") or []
    if not sources or len(sources) > 32:
        raise bad_request("compose needs 1 to 32 sourceObjects")
    data = bytearray()
    components = 0
    first = None
    for source in sources:
        generation = source.get("generation")
        obj = require_object(storage, bucket_name, source.get("name"),
                             int(generation) if generation is not None else None)
        wanted = (source.get("objectPreconditions") or {}).get("ifGenerationMatch")
        if wanted is not None and int(wanted) != int(obj["generation"]):
            raise precondition_failed()
        first = first or obj
        data += storage.get_file(bucket_name, obj["name"])
        components += int(obj.get("componentCount") or 1)
    destination = dict(body.get("destination") or {})
    obj = store_object(request, storage, bucket_name, name, data, destination,
                       first.get("contentType"), composite=components)
    response.json(render(obj, request))


# ---------------------------------------------------------------- buckets


def bucket_insert(request, response, storage, *args, **kwargs):
    body = body_dict(request)
    name = body.get("name")
    if not name:
        raise HttpError(400, "required", "Required parameter: name")
    if storage.get_bucket(name):
        raise HttpError(409, "conflict",
                        "Your previous request to create the named bucket succeeded and you "
                        "already own it.")
    bucket = emu_buckets._make_bucket_resource(name, storage.project_number)
    emu_buckets._patch_bucket(bucket, body)
    bucket["metageneration"] = "1"
    storage_class = bucket.get("storageClass") or "STANDARD"
    if storage_class not in STORAGE_CLASSES:
        raise bad_request("Invalid storage class: {}".format(storage_class))
    if body.get("defaultEventBasedHold") is not None:
        bucket["defaultEventBasedHold"] = bool(body["defaultEventBasedHold"])
    if bucket.get("retentionPolicy"):
        bucket["retentionPolicy"] = {
            "retentionPeriod": str(retention_period(bucket)),
            "effectiveTime": bucket["timeCreated"],
            "isLocked": False,
        }
    if q_bool(request, "enableObjectRetention"):
        bucket["objectRetention"] = {"mode": "Enabled"}
    storage.create_bucket(name, bucket)
    response.json(bucket)


def bucket_patch(request, response, storage, *args, **kwargs):
    name = request.params["bucket_name"]
    bucket = get_bucket(storage, name)
    body = body_dict(request)
    emu_buckets._patch_bucket(bucket, body)
    if "defaultEventBasedHold" in body:
        bucket["defaultEventBasedHold"] = bool(body["defaultEventBasedHold"])
    if "retentionPolicy" in body:
        if body["retentionPolicy"]:
            bucket["retentionPolicy"] = {
                "retentionPeriod": str(retention_period(bucket)),
                "effectiveTime": rfc3339(now_dt()),
                "isLocked": False,
            }
        else:
            bucket.pop("retentionPolicy", None)
    bucket["updated"] = rfc3339(now_dt())
    storage.create_bucket(name, bucket)
    response.json(bucket)


# ---------------------------------------------------------------- routing

REPLACED = {
    emu_objects.insert: insert,
    emu_objects.upload_partial: upload_chunk,
    emu_objects.get: get,
    emu_objects.download: download,
    emu_objects.ls: ls,
    emu_objects.delete: delete,
    emu_objects.patch: patch,
    emu_objects.copy: copy,
    emu_objects.rewrite: rewrite,
    emu_objects.compose: compose,
    emu_buckets.insert: bucket_insert,
    emu_buckets.patch: bucket_patch,
}


def patched_handlers():
    handlers = []
    for regex, methods in emu_server.HANDLERS:
        methods = {method: REPLACED.get(fn, fn) for method, fn in methods.items()}
        if methods.get("PATCH") is patch and "/o/" in regex:
            methods["PUT"] = update  # objects.update
        if methods.get("PUT") is upload_chunk:
            methods["DELETE"] = upload_cancel  # cancel a resumable session
        handlers.append((regex, methods))
    return tuple(handlers)


def fill_error_body(response):
    code = response.status.value
    if code < 400 or response._content:
        return
    reasons = {400: "invalid", 403: "forbidden", 404: "notFound", 409: "conflict",
               412: "conditionNotMet", 501: "notImplemented"}
    message = response.status.phrase
    if code == 404:
        message = "Not Found"
    response.json(error_body(code, reasons.get(code, "backendError"), message))


def handle(router, method):
    """Replaces Router.handle: body read and response written outside the lock, JSON errors."""
    handler = router._request_handler
    override = handler.headers.get("x-http-method-override")
    if override:
        method = override
    request = emu_server.Request(handler, method)
    response = emu_server.Response(handler)
    try:
        read_body(request)
        for regex, methods in HANDLERS:
            match = re.fullmatch(regex, request.path)
            if not match:
                continue
            request.set_match(match)
            fn = methods.get(method)
            if fn is None and method == "POST" and q(request, "uploadType") \
                    and request.path.endswith("/o"):
                fn = insert  # uploads POSTed without the /upload prefix
            if fn is None:
                raise HttpError(501, "notImplemented",
                                "Method not implemented: {} {}".format(method, request.path))
            with LOCK:
                fn(request, response, handler.storage)
            break
        else:
            raise HttpError(501, "notImplemented",
                            "Method not implemented: {} {}".format(method, request.path))
        fill_error_body(response)
    except NotModified:
        response = emu_server.Response(handler)
        response.status = HTTPStatus.NOT_MODIFIED
        response.write_file(b"", content_type=None)
    except HttpError as err:
        response = emu_server.Response(handler)
        set_error(response, err.code, err.reason, err.message, err.location)
    except NotFound:
        response = emu_server.Response(handler)
        set_error(response, 404, "notFound", "Not Found")
    except (BadRequest, Conflict) as err:
        response = emu_server.Response(handler)
        set_error(response, 400, "invalid", str(err) or "Bad Request")
    except Exception as err:  # noqa: BLE001 - answer 500 rather than drop the connection
        logger.error("%s %s failed:\n%s", method, request.full_url, traceback.format_exc())
        response = emu_server.Response(handler)
        set_error(response, 500, "backendError", "Internal error: {}".format(err))
    response.close()


class RequestHandler(emu_server.RequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length

    def log_message(self, format, *args):
        logger.info(format % args)


HANDLERS = patched_handlers()
emu_server.HANDLERS = HANDLERS
emu_server.Router.handle = handle
emu_objects.insert = insert  # the emulator's router falls back to this name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", help="keep data on disk here (default: in memory)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Its health check warns "Content handled as string" on every readiness probe.
        logging.getLogger("gcp_storage_emulator.server").setLevel(logging.ERROR)
    data_dir = os.path.abspath(args.data_dir) if args.data_dir else None
    storage = Storage(use_memory_fs=not data_dir, data_dir=data_dir)
    if not args.data_dir:
        # Nothing reads the snapshot back in memory mode; writing it is O(objects) per write.
        storage._write_config_to_file = lambda: None
    httpd = ThreadingHTTPServer((args.host, args.port), partial(RequestHandler, storage))
    httpd.daemon_threads = True
    logger.warning("gcs emulator (patched gcp-storage-emulator) on http://%s:%d",
                   args.host, args.port)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
