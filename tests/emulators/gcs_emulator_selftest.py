#!/usr/bin/env python3
"""Checks, over HTTP, each behaviour that gcs_emulator.py patches into gcp-storage-emulator.

Starts nothing: it talks to the server named by OFFSITE_TEST_GCS, e.g.
    eval "$(tests/emulators/start.sh DIR)"; python3 tests/emulators/gcs_emulator_selftest.py
Standard library only (urllib; http.client where a kept-alive connection matters). Each check prints "ok - NAME" or "FAIL - NAME: why"; the last line is
"N passed, M failed", and the exit status is 1 if anything failed.
"""

import base64
import hashlib
import http.client
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

ENDPOINT = os.environ.get("OFFSITE_TEST_GCS", "").rstrip("/")
API = ENDPOINT + "/storage/v1"
UPLOAD = ENDPOINT + "/upload/storage/v1"
KIB = 1024


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # 308 is "Resume Incomplete" here
        return None


OPENER = urllib.request.build_opener(NoRedirect)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "<{} {}>".format(self.status, self.body[:300])


def call(method, url, body=None, headers=None, params=None):
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=30) as reply:
            return Response(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, err.headers, err.read())


def q(name):
    return urllib.parse.quote(name, safe="")


# CRC32C (Castagnoli), computed here independently of the server's library.
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_b64(data):
    return base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_status(response, status, what):
    expect(response.status == status, "{}: expected {}, got {}".format(what, status, response))


def expect_error(response, status, reason, what):
    expect_status(response, status, what)
    error = response.json()["error"]
    expect(error["code"] == status, "{}: error code {}".format(what, error))
    expect(error["errors"][0]["reason"] == reason, "{}: reason {}".format(what, error))


# ---------------------------------------------------------------- helpers on the API

BUCKET = "offsite-selftest-{}".format(int(time.time() * 1000))


def media_upload(name, data, params=None, content_type="application/octet-stream"):
    return call("POST", UPLOAD + "/b/{}/o".format(BUCKET), data,
                {"Content-Type": content_type},
                dict({"uploadType": "media", "name": name}, **(params or {})))


def multipart_upload(meta, data, params=None):
    boundary = "offsite-selftest-boundary"
    body = (
        "--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
        "--{b}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).format(b=boundary, meta=json.dumps(meta)).encode() + data + \
        "\r\n--{}--\r\n".format(boundary).encode()
    return call("POST", UPLOAD + "/b/{}/o".format(BUCKET), body,
                {"Content-Type": "multipart/related; boundary=" + boundary},
                dict({"uploadType": "multipart"}, **(params or {})))


def start_resumable(name, meta=None, params=None):
    response = call("POST", UPLOAD + "/b/{}/o".format(BUCKET), meta or {},
                    params=dict({"uploadType": "resumable", "name": name}, **(params or {})))
    return response


def get_meta(name, params=None):
    return call("GET", API + "/b/{}/o/{}".format(BUCKET, q(name)), params=params)


def download(name, headers=None, params=None):
    return call("GET", API + "/b/{}/o/{}".format(BUCKET, q(name)), headers=headers,
                params=dict({"alt": "media"}, **(params or {})))


# ---------------------------------------------------------------- checks

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def bucket_created():
    response = call("POST", API + "/b", {"name": BUCKET}, params={"project": "test"})
    expect_status(response, 200, "bucket insert")
    expect(response.json()["name"] == BUCKET, "bucket name")


@check
def object_resource_fields():
    payload = b"The quick brown fox jumps over the lazy dog\n" * 3
    response = multipart_upload(
        {"name": "fields/fox.txt", "contentType": "text/plain",
         "metadata": {"owner": "offsite", "kind": "test"}}, payload)
    expect_status(response, 200, "multipart upload")
    for obj in (response.json(), get_meta("fields/fox.txt").json()):
        expect(obj["crc32c"] == crc32c_b64(payload), "crc32c {} != {}".format(
            obj["crc32c"], crc32c_b64(payload)))
        expect(obj["md5Hash"] == md5_b64(payload), "md5Hash")
        expect(obj["size"] == str(len(payload)), "size as a string: {!r}".format(obj["size"]))
        expect(obj["metageneration"] == "1", "metageneration {}".format(obj["metageneration"]))
        expect(obj["generation"].isdigit() and int(obj["generation"]) > 0, "generation")
        expect(obj["storageClass"] == "STANDARD", "default storageClass")
        expect(obj["contentType"] == "text/plain", "contentType")
        expect(obj["metadata"] == {"owner": "offsite", "kind": "test"}, "user metadata")
        expect(obj["updated"].endswith("Z") and obj["timeCreated"], "updated/timeCreated")
    # Known vectors, so that a wrong CRC-32C here would not agree with a wrong one there.
    expect(crc32c(b"123456789") == 0xE3069283, "local CRC32C check value")
    response = media_upload("fields/digits", b"123456789")
    expect(response.json()["crc32c"] == base64.b64encode(bytes.fromhex("e3069283")).decode(),
           "crc32c of 123456789: {}".format(response.json()["crc32c"]))
    expect(response.json()["md5Hash"] == "JfnnlDI7RTiF9RgfG2JNCw==", "md5 of 123456789")
    # Binary data (CR LF, boundary-like bytes) survives a multipart upload byte for byte.
    binary = bytes(range(256)) * 3 + b"\r\n--x\r\n\r\n"
    response = multipart_upload({"name": "fields/binary"}, binary)
    expect(response.json()["size"] == str(len(binary)), "binary size")
    expect(download("fields/binary").body == binary, "binary round trip")
    expect(response.json()["contentType"] == "application/octet-stream", "binary contentType")


@check
def wrong_checksum_refused():
    response = multipart_upload({"name": "fields/bad", "md5Hash": md5_b64(b"other")}, b"data")
    expect_error(response, 400, "invalid", "wrong md5Hash")
    response = multipart_upload({"name": "fields/bad", "crc32c": crc32c_b64(b"other")}, b"data")
    expect_error(response, 400, "invalid", "wrong crc32c")
    expect_status(get_meta("fields/bad"), 404, "nothing stored")


@check
def storage_class_kept():
    response = multipart_upload({"name": "class/nearline", "storageClass": "NEARLINE"}, b"n")
    expect_status(response, 200, "multipart upload")
    expect(response.json()["storageClass"] == "NEARLINE", "insert response")
    expect(get_meta("class/nearline").json()["storageClass"] == "NEARLINE", "get")
    session = start_resumable("class/coldline", {"storageClass": "COLDLINE"})
    expect_status(session, 200, "resumable start")
    done = call("PUT", session.header("Location"), b"cold")
    expect_status(done, 200, "resumable single PUT")
    expect(done.json()["storageClass"] == "COLDLINE", "resumable insert response")
    listing = call("GET", API + "/b/{}/o".format(BUCKET), params={"prefix": "class/"}).json()
    classes = {item["name"]: item["storageClass"] for item in listing["items"]}
    expect(classes == {"class/nearline": "NEARLINE", "class/coldline": "COLDLINE"},
           "list: {}".format(classes))
    expect(download("class/coldline").header("x-goog-storage-class") == "COLDLINE", "header")
    rewritten = call("POST", API + "/b/{b}/o/{n}/rewriteTo/b/{b}/o/{n}".format(
        b=BUCKET, n=q("class/nearline")), {"storageClass": "ARCHIVE"})
    expect_status(rewritten, 200, "rewrite")
    expect(rewritten.json()["resource"]["storageClass"] == "ARCHIVE", "rewrite to ARCHIVE")
    expect_error(multipart_upload({"name": "class/bad", "storageClass": "FROZEN"}, b"x"),
                 400, "invalid", "unknown storage class")


@check
def pagination_over_1000_objects():
    count = 1003
    names = ["page/{:05d}".format(i) for i in range(count)]
    for name in names:
        expect_status(media_upload(name, name.encode()), 200, "upload " + name)
    url = API + "/b/{}/o".format(BUCKET)
    first = call("GET", url, params={"prefix": "page/"}).json()
    expect(len(first["items"]) == 1000, "default page size: {}".format(len(first["items"])))
    expect("nextPageToken" in first, "nextPageToken on the first page")
    second = call("GET", url, params={"prefix": "page/",
                                      "pageToken": first["nextPageToken"]}).json()
    expect(len(second["items"]) == 3 and "nextPageToken" not in second,
           "second page: {} items, token {}".format(len(second["items"]),
                                                    second.get("nextPageToken")))
    listed = [item["name"] for item in first["items"] + second["items"]]
    expect(listed == names, "all names once, in order")
    capped = call("GET", url, params={"prefix": "page/", "maxResults": 5000}).json()
    expect(len(capped["items"]) == 1000, "maxResults is capped at 1000")
    # Small pages, with a delimiter: prefixes and items share the page size.
    for name in ("dirs/a/1", "dirs/a/2", "dirs/b/1", "dirs/c", "dirs/d/1", "dirs/e"):
        media_upload(name, b"x")
    seen, token, pages = [], None, 0
    while True:
        params = {"prefix": "dirs/", "delimiter": "/", "maxResults": 2}
        if token:
            params["pageToken"] = token
        page = call("GET", url, params=params).json()
        pages += 1
        seen += page.get("prefixes", []) + [item["name"] for item in page.get("items", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    expect(sorted(seen) == ["dirs/a/", "dirs/b/", "dirs/c", "dirs/d/", "dirs/e"],
           "delimiter listing: {}".format(seen))
    expect(pages == 3, "pages of 2: {}".format(pages))
    offset = call("GET", url, params={"prefix": "page/", "startOffset": "page/01000"}).json()
    expect([i["name"] for i in offset["items"]] == names[1000:], "startOffset")


@check
def preconditions():
    created = media_upload("pre/object", b"v1", {"ifGenerationMatch": "0"})
    expect_status(created, 200, "ifGenerationMatch=0 on a new name")
    generation = created.json()["generation"]
    expect_error(media_upload("pre/object", b"v2", {"ifGenerationMatch": "0"}),
                 412, "conditionNotMet", "media ifGenerationMatch=0 on an existing object")
    expect_error(multipart_upload({"name": "pre/object"}, b"v2", {"ifGenerationMatch": "0"}),
                 412, "conditionNotMet", "multipart ifGenerationMatch=0")
    expect_error(start_resumable("pre/object", params={"ifGenerationMatch": "0"}),
                 412, "conditionNotMet", "resumable start ifGenerationMatch=0")
    expect(download("pre/object").body == b"v1", "not overwritten")
    # Checked again when a resumable upload completes: the object appeared meanwhile.
    session = start_resumable("pre/late", params={"ifGenerationMatch": "0"})
    expect_status(session, 200, "resumable start on a new name")
    media_upload("pre/late", b"someone else")
    expect_error(call("PUT", session.header("Location"), b"mine"),
                 412, "conditionNotMet", "resumable completion ifGenerationMatch=0")
    expect(download("pre/late").body == b"someone else", "late upload refused")
    # Matching generation succeeds; a stale one fails.
    replaced = media_upload("pre/object", b"v2", {"ifGenerationMatch": generation})
    expect_status(replaced, 200, "ifGenerationMatch=current")
    new_generation = replaced.json()["generation"]
    expect(int(new_generation) > int(generation), "generation increases")
    expect_error(media_upload("pre/object", b"v3", {"ifGenerationMatch": generation}),
                 412, "conditionNotMet", "stale ifGenerationMatch")
    expect_error(media_upload("pre/object", b"v3", {"ifGenerationNotMatch": new_generation}),
                 412, "conditionNotMet", "ifGenerationNotMatch=current on insert")
    object_url = API + "/b/{}/o/{}".format(BUCKET, q("pre/object"))
    expect_error(call("PATCH", object_url, {"metadata": {"k": "v"}},
                      params={"ifMetagenerationMatch": "7"}),
                 412, "conditionNotMet", "patch ifMetagenerationMatch")
    patched = call("PATCH", object_url, {"metadata": {"k": "v"}},
                   params={"ifMetagenerationMatch": "1"})
    expect_status(patched, 200, "patch ifMetagenerationMatch=1")
    expect(patched.json()["metageneration"] == "2", "metageneration after patch")
    expect_status(get_meta("pre/object", {"ifGenerationNotMatch": new_generation}), 304,
                  "get ifGenerationNotMatch=current")
    expect_error(get_meta("pre/object", {"ifGenerationMatch": generation}),
                 412, "conditionNotMet", "get stale ifGenerationMatch")
    expect_status(download("pre/object", params={"ifGenerationMatch": new_generation}), 200,
                  "download ifGenerationMatch=current")
    copy_url = API + "/b/{b}/o/{s}/copyTo/b/{b}/o/{d}".format(
        b=BUCKET, s=q("pre/object"), d=q("pre/late"))
    expect_error(call("POST", copy_url, params={"ifGenerationMatch": "0"}),
                 412, "conditionNotMet", "copy onto an existing object, ifGenerationMatch=0")
    expect_error(call("POST", copy_url, params={"ifSourceGenerationMatch": generation}),
                 412, "conditionNotMet", "copy ifSourceGenerationMatch stale")
    expect_error(call("DELETE", object_url, params={"ifGenerationMatch": generation}),
                 412, "conditionNotMet", "delete stale ifGenerationMatch")
    expect_status(call("DELETE", object_url, params={"ifGenerationMatch": new_generation}),
                  204, "delete ifGenerationMatch=current")
    expect_error(call("DELETE", object_url), 404, "notFound", "deleted")


@check
def media_download_headers():
    payload = bytes(range(200)) * 5
    obj = multipart_upload({"name": "dl/object", "metadata": {"m": "1"}}, payload).json()
    response = download("dl/object")
    expect_status(response, 200, "download")
    expect(response.body == payload, "body")
    expect(response.header("x-goog-generation") == obj["generation"], "x-goog-generation")
    expect(response.header("x-goog-metageneration") == "1", "x-goog-metageneration")
    expect(response.header("x-goog-stored-content-length") == str(len(payload)),
           "x-goog-stored-content-length")
    expect(response.header("x-goog-hash") == "crc32c={},md5={}".format(
        crc32c_b64(payload), md5_b64(payload)), "x-goog-hash: {}".format(
        response.header("x-goog-hash")))
    expect(response.header("x-goog-meta-m") == "1", "x-goog-meta-*")
    via_media_link = call("GET", obj["mediaLink"])
    expect(via_media_link.body == payload, "mediaLink works")


@check
def ranged_download():
    payload = bytes(range(100))
    media_upload("dl/range", payload)
    response = download("dl/range", {"Range": "bytes=10-19"})
    expect_status(response, 206, "bytes=10-19")
    expect(response.body == payload[10:20], "range body")
    expect(response.header("Content-Range") == "bytes 10-19/100", "Content-Range: {}".format(
        response.header("Content-Range")))
    expect(response.header("x-goog-generation"), "x-goog-generation on 206")
    expect(response.header("x-goog-hash") == "crc32c={},md5={}".format(
        crc32c_b64(payload), md5_b64(payload)), "x-goog-hash of the whole object on 206")
    response = download("dl/range", {"Range": "bytes=90-"})
    expect(response.status == 206 and response.body == payload[90:], "bytes=90-")
    response = download("dl/range", {"Range": "bytes=-5"})
    expect(response.status == 206 and response.body == payload[95:], "bytes=-5")
    expect(response.header("Content-Range") == "bytes 95-99/100", "suffix Content-Range")
    response = download("dl/range", {"Range": "bytes=95-500"})
    expect(response.status == 206 and response.body == payload[95:], "end past the size")
    expect_status(download("dl/range", {"Range": "bytes=100-"}), 416, "start past the end")


@check
def resumable_upload_in_three_chunks():
    chunk = 256 * KIB
    payload = bytes((i * 7) % 251 for i in range(2 * chunk + 1000))
    session = start_resumable("resumable/three", {"contentType": "application/x-offsite",
                                                  "metadata": {"chunks": "3"}})
    expect_status(session, 200, "start")
    location = session.header("Location")
    expect(location.startswith(ENDPOINT + "/upload/storage/v1/"),
           "Location on the host:port we used: {}".format(location))
    status = call("PUT", location, b"", {"Content-Range": "bytes */*"})
    expect(status.status == 308 and status.header("Range") is None,
           "status before any data: 308 without Range, got {} {}".format(
               status.status, status.header("Range")))
    first = call("PUT", location, payload[:chunk],
                 {"Content-Range": "bytes 0-{}/*".format(chunk - 1)})
    expect_status(first, 308, "chunk 1")
    expect(first.header("Range") == "bytes=0-{}".format(chunk - 1), "Range after chunk 1")
    # What a client does after a crash: ask how much is stored, then go on from there.
    status = call("PUT", location, b"", {"Content-Range": "bytes */*"})
    expect(status.status == 308 and status.header("Range") == "bytes=0-{}".format(chunk - 1),
           "status query in the middle: {} {}".format(status.status, status.header("Range")))
    second = call("PUT", location, payload[chunk:2 * chunk],
                  {"Content-Range": "bytes {}-{}/*".format(chunk, 2 * chunk - 1)})
    expect(second.status == 308 and second.header("Range") == "bytes=0-{}".format(
        2 * chunk - 1), "chunk 2: {} {}".format(second.status, second.header("Range")))
    again = call("PUT", location, payload[chunk:2 * chunk],
                 {"Content-Range": "bytes {}-{}/*".format(chunk, 2 * chunk - 1)})
    expect(again.status == 308 and again.header("Range") == "bytes=0-{}".format(
        2 * chunk - 1), "chunk 2 sent again is accepted: {}".format(again.status))
    status = call("PUT", location, b"", {"Content-Range": "bytes */{}".format(len(payload))})
    expect(status.status == 308 and status.header("Range") == "bytes=0-{}".format(
        2 * chunk - 1), "status query with the total")
    gap = call("PUT", location, b"x" * 10,
               {"Content-Range": "bytes {}-{}/*".format(2 * chunk + 10, 2 * chunk + 19)})
    expect_status(gap, 400, "a chunk past the stored end")
    last = call("PUT", location, payload[2 * chunk:],
                {"Content-Range": "bytes {}-{}/{}".format(2 * chunk, len(payload) - 1,
                                                          len(payload))})
    expect_status(last, 200, "last chunk")
    obj = last.json()
    expect(obj["size"] == str(len(payload)), "size")
    expect(obj["crc32c"] == crc32c_b64(payload) and obj["md5Hash"] == md5_b64(payload),
           "hashes of the whole upload")
    expect(obj["contentType"] == "application/x-offsite", "contentType from the metadata")
    expect(obj["metadata"] == {"chunks": "3"}, "metadata from the session start")
    after = call("PUT", location, b"", {"Content-Range": "bytes */{}".format(len(payload))})
    expect(after.status == 200 and after.json()["generation"] == obj["generation"],
           "status after completion answers the object")
    expect(download("resumable/three").body == payload, "content")


@check
def resumable_finalize_with_empty_put_and_cancel():
    chunk = 256 * KIB
    payload = b"z" * chunk
    location = start_resumable("resumable/empty-final").header("Location")
    expect_status(call("PUT", location, payload, {"Content-Range": "bytes 0-{}/*".format(
        chunk - 1)}), 308, "chunk")
    done = call("PUT", location, b"", {"Content-Range": "bytes */{}".format(chunk)})
    expect(done.status == 200 and done.json()["size"] == str(chunk), "bytes */TOTAL finalizes")
    location = start_resumable("resumable/cancelled").header("Location")
    expect_status(call("DELETE", location), 499, "cancel")
    expect_status(call("PUT", location, b"x"), 404, "a cancelled session is gone")
    expect_status(get_meta("resumable/cancelled"), 404, "nothing stored")
    empty = start_resumable("resumable/zero").header("Location")
    done = call("PUT", empty, b"", {"Content-Range": "bytes */0"})
    expect(done.status == 200 and done.json()["size"] == "0", "empty object: {}".format(done))


@check
def multipart_media_part_without_headers():
    # Go's API client (rclone) writes the media part with no header lines when it has no
    # content type: "--B CRLF CRLF data CRLF --B--". The data starts after that blank line,
    # and blank lines inside it (CRLF CRLF, LF LF, a leading CRLF) are data.
    boundary = "0d7b5e3cf1a2"
    url = UPLOAD + "/b/{}/o".format(BUCKET)

    def go_style(meta, data):
        body = (
            "--{b}\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{b}\r\n\r\n"
        ).format(b=boundary, meta=json.dumps(meta)).encode() + data + \
            "\r\n--{}--\r\n".format(boundary).encode()
        return call("POST", url, body,
                    {"Content-Type": "multipart/related; boundary=" + boundary},
                    {"alt": "json", "uploadType": "multipart"})

    cases = {
        "noheaders/blank-lines": b"head\r\n\r\nmiddle\n\nend\r\n",
        "noheaders/leading-crlf": b"\r\n\r\nstarts with blank lines",
        "noheaders/binary": bytes(range(256)) * 64 + b"\r\n--" + boundary.encode()[:-1],
        "noheaders/empty": b"",
    }
    for name, data in cases.items():
        response = go_style({"name": name}, data)
        expect_status(response, 200, "multipart upload " + name)
        obj = response.json()
        expect(obj["size"] == str(len(data)), "{}: size {} != {}".format(
            name, obj["size"], len(data)))
        expect(obj["md5Hash"] == md5_b64(data), "{}: md5Hash".format(name))
        expect(obj["contentType"] == "application/octet-stream",
               "{}: contentType {}".format(name, obj["contentType"]))
        expect(download(name).body == data, "{}: round trip".format(name))
    # The content type in the metadata wins over the (absent) part header.
    response = go_style({"name": "noheaders/typed", "contentType": "text/x-offsite"}, b"a\n\nb")
    expect(response.json().get("contentType") == "text/x-offsite", "contentType from metadata")
    # Transport padding after the boundary, and a preamble before the first one.
    body = ("preamble\r\n--{b}  \r\n\r\n{{\"name\": \"noheaders/padded\"}}\r\n"
            "--{b}\t\r\n\r\nx\r\n\r\ny\r\n--{b}--").format(b=boundary).encode()
    response = call("POST", url, body,
                    {"Content-Type": 'multipart/related; boundary="{}"'.format(boundary)},
                    {"uploadType": "multipart"})
    expect_status(response, 200, "padded multipart upload")
    expect(download("noheaders/padded").body == b"x\r\n\r\ny", "padded: body")
    # A body that never reaches its closing boundary is refused, not stored cut short.
    truncated = "--{b}\r\n\r\n{{}}\r\n--{b}\r\n\r\npartial".format(b=boundary).encode()
    expect_error(call("POST", url, truncated,
                      {"Content-Type": "multipart/related; boundary=" + boundary},
                      {"uploadType": "multipart", "name": "noheaders/truncated"}),
                 400, "invalid", "unterminated multipart body")
    expect_status(get_meta("noheaders/truncated"), 404, "nothing stored")


@check
def resumable_upload_no_308():
    # With X-GUploader-No-308: yes, GCS answers "resume incomplete" as 200 plus
    # X-Http-Status-Code-Override: 308 (and the Range); Go's client, which POSTs its chunks,
    # refuses a bare 308.
    chunk = 256 * KIB
    payload = bytes((i * 13) % 241 for i in range(2 * chunk + 123))
    headers = {"X-GUploader-No-308": "yes", "Content-Type": "application/octet-stream"}
    session = start_resumable("no308/object", {"name": "no308/object"})
    expect_status(session, 200, "start")
    location = session.header("Location")

    def send(method, data, content_range):
        return call(method, location, data, dict(headers, **{"Content-Range": content_range}))

    def incomplete(response, stored, what):
        expect(response.status == 200, "{}: expected 200, got {}".format(what, response))
        expect(response.header("X-Http-Status-Code-Override") == "308",
               "{}: X-Http-Status-Code-Override {}".format(
                   what, response.header("X-Http-Status-Code-Override")))
        want = "bytes=0-{}".format(stored - 1) if stored else None
        expect(response.header("Range") == want, "{}: Range {} != {}".format(
            what, response.header("Range"), want))

    incomplete(send("PUT", b"", "bytes */*"), 0, "status before any data")
    incomplete(send("POST", payload[:chunk], "bytes 0-{}/*".format(chunk - 1)), chunk,
               "chunk 1 (POST)")
    incomplete(send("PUT", payload[chunk:2 * chunk], "bytes {}-{}/*".format(
        chunk, 2 * chunk - 1)), 2 * chunk, "chunk 2 (PUT)")
    incomplete(send("PUT", b"", "bytes */*"), 2 * chunk, "status query")
    last = send("POST", payload[2 * chunk:], "bytes {}-{}/{}".format(
        2 * chunk, len(payload) - 1, len(payload)))
    expect_status(last, 200, "last chunk")
    expect(last.header("X-Http-Status-Code-Override") is None,
           "no override on completion: {}".format(last.header("X-Http-Status-Code-Override")))
    obj = last.json()
    expect(obj["size"] == str(len(payload)) and obj["md5Hash"] == md5_b64(payload),
           "object of the whole upload")
    expect(download("no308/object").body == payload, "content")
    # Without the header, the same answer is still a bare 308.
    location = start_resumable("no308/bare").header("Location")
    bare = call("PUT", location, payload[:chunk],
                {"Content-Range": "bytes 0-{}/*".format(chunk - 1)})
    expect(bare.status == 308 and bare.header("X-Http-Status-Code-Override") is None,
           "without the header: {} {}".format(bare.status,
                                              bare.header("X-Http-Status-Code-Override")))


@check
def holds_and_retention():
    media_upload("hold/object", b"held")
    url = API + "/b/{}/o/{}".format(BUCKET, q("hold/object"))
    expect_status(call("PATCH", url, {"temporaryHold": True}), 200, "set temporaryHold")
    expect_error(call("DELETE", url), 403, "retentionPolicyNotMet", "delete under hold")
    expect_error(media_upload("hold/object", b"new"), 403, "retentionPolicyNotMet",
                 "overwrite under hold")
    expect_status(call("PATCH", url, {"temporaryHold": False}), 200, "release hold")
    expect_status(call("DELETE", url), 204, "delete after release")
    # A bucket retention policy protects each object until retentionExpirationTime.
    bucket = BUCKET + "-retention"
    expect_status(call("POST", API + "/b", {"name": bucket,
                                            "retentionPolicy": {"retentionPeriod": "3600"}},
                       params={"project": "test"}), 200, "bucket with a retention policy")
    obj = call("POST", UPLOAD + "/b/{}/o".format(bucket), b"kept",
               params={"uploadType": "media", "name": "r"}).json()
    expect("retentionExpirationTime" in obj, "retentionExpirationTime")
    expect_error(call("DELETE", API + "/b/{}/o/r".format(bucket)), 403, "retentionPolicyNotMet",
                 "delete before retentionExpirationTime")
    # Object retention, on a bucket that enables it.
    bucket = BUCKET + "-objret"
    expect_status(call("POST", API + "/b", {"name": bucket},
                       params={"project": "test", "enableObjectRetention": "true"}), 200,
                  "bucket with object retention")
    url = API + "/b/{}/o/o".format(bucket)
    call("POST", UPLOAD + "/b/{}/o".format(bucket), b"x", params={"uploadType": "media",
                                                                  "name": "o"})
    until = {"mode": "Unlocked", "retainUntilTime": "2099-01-01T00:00:00Z"}
    expect_status(call("PATCH", url, {"retention": until}), 200, "set retention")
    expect_error(call("DELETE", url), 403, "retentionPolicyNotMet", "delete under retention")
    expect_status(call("PATCH", url, {"retention": None}), 403, "remove without override")
    expect_status(call("PATCH", url, {"retention": None},
                       params={"overrideUnlockedRetention": "true"}), 200, "remove (Unlocked)")
    expect_status(call("DELETE", url), 204, "delete after removing retention")


@check
def chunked_body_on_kept_alive_connection():
    # reqwest streams multipart bodies with Transfer-Encoding: chunked over kept-alive
    # connections; the request after one must still be read correctly.
    url = urllib.parse.urlsplit(ENDPOINT)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    payload = bytes(range(256)) * 1000
    boundary = "b0undary"
    body = (
        '--{b}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        "Content-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
        '--{b}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'
    ).format(b=boundary, meta=json.dumps({"name": "keepalive/form"})).encode() + payload + \
        "\r\n--{}--\r\n".format(boundary).encode()
    pieces = (body[i:i + 10000] for i in range(0, len(body), 10000))
    conn.request("POST", "/upload/storage/v1/b/{}/o?uploadType=multipart".format(BUCKET),
                 body=pieces, encode_chunked=True,
                 headers={"Content-Type": "multipart/form-data; boundary=" + boundary,
                          "Transfer-Encoding": "chunked"})
    reply = conn.getresponse()
    obj = json.loads(reply.read())
    expect(reply.status == 200, "chunked multipart/form-data upload: {}".format(reply.status))
    expect(obj["md5Hash"] == md5_b64(payload), "content of a chunked upload")
    expect(obj["contentType"] == "application/octet-stream", "a data part without type")
    for _ in range(2):  # the same connection goes on working, errors included
        conn.request("GET", "/storage/v1/b/{}/o/{}?alt=media".format(BUCKET, q("nothing")))
        reply = conn.getresponse()
        expect(reply.status == 404 and json.loads(reply.read())["error"]["code"] == 404,
               "404 with a JSON body on the same connection")
        conn.request("GET", "/storage/v1/b/{}/o/{}?alt=media".format(BUCKET, q("keepalive/form")))
        reply = conn.getresponse()
        expect(reply.status == 200 and reply.read() == payload, "download on the same connection")
    conn.close()


def main():
    if not ENDPOINT:
        print("OFFSITE_TEST_GCS is not set: start the emulators with tests/emulators/start.sh")
        return 2
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - report and go on with the next check
            failed += 1
            detail = str(err) if isinstance(err, AssertionError) else traceback.format_exc()
            print("FAIL - {}: {}".format(fn.__name__, detail))
        else:
            passed += 1
            print("ok - {}".format(fn.__name__))
    print("{} passed, {} failed".format(passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
