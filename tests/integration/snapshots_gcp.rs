//! GCP persistent-disk snapshots: contract tests. No emulator of Compute Engine exists, so the
//! real adapter (google-cloud-compute-v1 over HTTP) talks to a local server that checks each
//! request against the REST reference and answers with its documented shapes:
//! - snapshots.insert: https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/insert
//! - snapshots.get: https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/get
//! - snapshots.list: https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/list
//! - snapshots.delete: https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/delete
//! - globalOperations.get: https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations/get
//! - disks.insert: https://cloud.google.com/compute/docs/reference/rest/v1/disks/insert
//! - errors: https://cloud.google.com/compute/docs/api/handling-errors
//!
//! The client sends no Authorization header to a loopback endpoint (anonymous credentials), so
//! none is checked here.

use serde_json::{json, Value};

use crate::common::*;
use crate::fake_api::{FakeApi, Step};

const PROJECT: &str = "acme-prod";
const DISK: &str = "projects/acme-prod/zones/us-central1-a/disks/db-data";

const INSERT: &str = "https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/insert";
const GET: &str = "https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/get";
const LIST: &str = "https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/list";
const DELETE: &str = "https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/delete";
const OPERATION: &str =
    "https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations/get";
const DISK_INSERT: &str = "https://cloud.google.com/compute/docs/reference/rest/v1/disks/insert";
const DISK_AGGREGATED: &str =
    "https://cloud.google.com/compute/docs/reference/rest/v1/disks/aggregatedList";

/// A Compute Engine request: every one the client sends carries the system parameters `$alt`
/// (json) and `$apiVersion` (the API version the client was built for)
/// (https://cloud.google.com/apis/docs/system-parameters).
fn call(doc: &'static str, method: &'static str, path: impl Into<String>, answer: Value) -> Step {
    Step::new(doc, method, path, answer)
        .query("$alt", "json")
        .query("$apiVersion", "2026-09-01")
}

/// globalOperations.get: the client sends `$alt` alone there.
fn operation_call(
    doc: &'static str,
    method: &'static str,
    path: impl Into<String>,
    answer: Value,
) -> Step {
    Step::new(doc, method, path, answer).query("$alt", "json")
}

fn snapshots_path() -> String {
    format!("/compute/v1/projects/{PROJECT}/global/snapshots")
}

// The names offsite gives, written out (not computed by the code under test): a rerun finds
// what an earlier run made by its name, so a change of naming would make every rerun after an
// upgrade snapshot again, and these tests must fail when names change.
/// `snapshot create --region us --volume DISK --token run-1` (policy `adhoc`), and its token.
const RUN_1: &str = "offsite-db-data-478da06dbf2c";
const RUN_1_TOKEN: &str = "ab4f2405a0e3889b6ce39559";
/// The same without `--region` (region `default`), tokens run-q and run-m.
const RUN_Q: &str = "offsite-db-data-35a80f0281b9";
const RUN_M: &str = "offsite-db-data-3c122bc63e18";

/// A Snapshot resource as snapshots.get documents it.
fn snapshot(name: &str, status: &str, created: &str, labels: Value) -> Value {
    json!({
        "kind": "compute#snapshot",
        "id": "4805871265423523122",
        "creationTimestamp": created,
        "name": name,
        "status": status,
        "sourceDisk": format!("https://www.googleapis.com/compute/v1/{DISK}"),
        "sourceDiskId": "1186472381622305122",
        "diskSizeGb": "10",
        "storageBytes": "1073741824",
        "storageBytesStatus": "UP_TO_DATE",
        "labels": labels,
        "labelFingerprint": "42WmSpB8rSM=",
        "storageLocations": ["us"],
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/snapshots/{name}"),
    })
}

/// An Operation as globalOperations.get documents it.
fn operation(name: &str, status: &str, progress: u32, target: &str) -> Value {
    json!({
        "kind": "compute#operation",
        "id": "7134651201246378",
        "name": name,
        "operationType": "insert",
        "targetLink": format!("https://www.googleapis.com/compute/v1/{target}"),
        "status": status,
        "progress": progress,
        "insertTime": "2026-12-07T02:00:00.000-08:00",
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/operations/{name}"),
    })
}

fn not_found(what: &str) -> Value {
    json!({"error": {"code": 404, "message": format!("The resource '{what}' was not found"),
        "errors": [{"message": format!("The resource '{what}' was not found"), "domain": "global", "reason": "notFound"}]}})
}

impl Sandbox {
    fn gcp_cmd(&self, api: &FakeApi) -> assert_cmd::Command {
        let mut c = self.cmd();
        c.env("OFFSITE_GCP_COMPUTE_ENDPOINT", &api.url)
            .env("OFFSITE_SNAPSHOT_POLL_SECONDS", "0.05")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("GOOGLE_CLOUD_PROJECT");
        c
    }
}

/// `offsite snapshot SUB --provider gcp ARGS...` against the fake API.
fn gcp(sb: &Sandbox, api: &FakeApi, sub: &str, args: &[&str]) -> std::process::Output {
    sb.gcp_cmd(api)
        .args(["snapshot", sub, "--provider", "gcp"])
        .args(args)
        .output()
        .unwrap()
}

/// The snapshots.insert body of `snapshot create --volume DISK` without a region or tags.
fn insert_body(name: &str) -> Value {
    json!({
        "name": name,
        "sourceDisk": DISK,
        "labels": {"offsite_tool": "offsite", "offsite_policy": "adhoc", "offsite_created": "*",
                   "offsite_token": "*", "offsite_volume": "projects_acme-prod_zones_us-central1-a_disks_db-data"},
        "description": "*",
    })
}

#[test]
fn contract_gcp_snapshot_create_follows_the_global_operation_then_restores_a_disk() {
    let sb = Sandbox::new();
    let name = RUN_1;
    let id = format!("projects/{PROJECT}/global/snapshots/{name}");
    let op = "operation-1765101600000-5f1a2b3c4d5e6-abcd1234-ef567890";
    let ready = snapshot(
        name,
        "READY",
        "2026-12-07T02:00:00.000-08:00",
        json!({
        "offsite_tool": "offsite", "offsite_policy": "adhoc", "offsite_created": "20261207t100000z",
        "offsite_volume": "projects_acme-prod_zones_us-central1-a_disks_db-data", "team": "db"}),
    );
    let api = FakeApi::start(vec![
        // The token's name is looked for first: a rerun finds what the first run made.
        call(GET, "GET", format!("{}/{name}", snapshots_path()), not_found(&id)).status(404),
        call(INSERT, "POST", snapshots_path(), operation(op, "RUNNING", 0, DISK))
            .query("requestId", "*")
            .body(json!({
                "name": name,
                "sourceDisk": DISK,
                "storageLocations": ["us"],
                "labels": {"offsite_tool": "offsite", "offsite_policy": "adhoc", "offsite_created": "*",
                           "offsite_token": RUN_1_TOKEN, "offsite_volume": "projects_acme-prod_zones_us-central1-a_disks_db-data",
                           "team": "db"},
                "description": "*",
            })),
        operation_call(OPERATION, "GET", format!("/compute/v1/projects/{PROJECT}/global/operations/{op}"), operation(op, "RUNNING", 40, DISK)),
        operation_call(OPERATION, "GET", format!("/compute/v1/projects/{PROJECT}/global/operations/{op}"), operation(op, "DONE", 100, DISK)),
        call(GET, "GET", format!("{}/{name}", snapshots_path()), ready.clone()),
        // restore: the snapshot is read (it must be READY), then a disk made from it
        call(GET, "GET", format!("{}/{name}", snapshots_path()), ready.clone()),
        call(DISK_INSERT, "POST", format!("/compute/v1/projects/{PROJECT}/zones/us-central1-a/disks"),
            json!({"kind": "compute#operation", "name": "operation-disk-1", "zone": "https://www.googleapis.com/compute/v1/projects/acme-prod/zones/us-central1-a", "status": "RUNNING", "progress": 0}))
            .query("requestId", "*")
            .body(json!({
                "name": "db-data-restored",
                "sourceSnapshot": id,
                "type": format!("projects/{PROJECT}/zones/us-central1-a/diskTypes/pd-balanced"),
                "labels": {"offsite_tool": "offsite", "offsite_source": "*"},
            })),
    ]);
    let o = gcp(
        &sb,
        &api,
        "create",
        &[
            "--region", "us", "--volume", DISK, "--token", "run-1", "--tag", "team=db", "--wait",
            "--json",
        ],
    );
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["snapshots"][0];
    assert_eq!(s["snapshot"]["id"], id.as_str(), "{v}");
    assert_eq!(s["snapshot"]["state"], "completed", "{v}");
    assert_eq!(s["snapshot"]["volume"], DISK, "{v}");
    assert_eq!(s["volume"], DISK, "{v}");
    let o = gcp(
        &sb,
        &api,
        "restore",
        &[
            &id,
            "--to-volume",
            "db-data-restored",
            "--zone",
            "us-central1-a",
            "--volume-type",
            "pd-balanced",
        ],
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("projects/acme-prod/zones/us-central1-a/disks/db-data-restored"),
        "{}",
        stdout(&o)
    );
    api.finish();
}

#[test]
fn contract_gcp_snapshot_quota_error_in_the_operation_is_named() {
    let sb = Sandbox::new();
    let name = RUN_Q;
    let op = "operation-quota";
    let mut failed = operation(op, "DONE", 100, DISK);
    failed["httpErrorStatusCode"] = json!(403);
    failed["httpErrorMessage"] = json!("FORBIDDEN");
    failed["error"] = json!({"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'SNAPSHOTS' exceeded.  Limit: 10.0 globally."}]});
    let api = FakeApi::start(vec![
        call(
            GET,
            "GET",
            format!("{}/{name}", snapshots_path()),
            not_found(name),
        )
        .status(404),
        call(INSERT, "POST", snapshots_path(), failed)
            .query("requestId", "*")
            .body(insert_body(name)),
    ]);
    let o = gcp(&sb, &api, "create", &["--volume", DISK, "--token", "run-q"]);
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains("QUOTA_EXCEEDED") && e.contains("Limit: 10.0"),
        "{e}"
    );
    assert!(e.contains("quota"), "{e}");
    api.finish();
}

#[test]
fn contract_gcp_snapshot_of_a_missing_disk_says_not_found() {
    let sb = Sandbox::new();
    let name = RUN_M;
    let api = FakeApi::start(vec![
        call(
            GET,
            "GET",
            format!("{}/{name}", snapshots_path()),
            not_found(name),
        )
        .status(404),
        call(INSERT, "POST", snapshots_path(), not_found(DISK))
            .status(404)
            .query("requestId", "*")
            .body(insert_body(name)),
    ]);
    let o = gcp(&sb, &api, "create", &["--volume", DISK, "--token", "run-m"]);
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("was not found") && e.contains(DISK), "{e}");
    api.finish();
}

#[test]
fn contract_gcp_snapshot_prune_deletes_what_retention_drops_and_keeps_the_newest() {
    let sb = Sandbox::new();
    let labels = |t: &str| {
        json!({"offsite_tool": "offsite", "offsite_policy": "db-gcp", "offsite_created": t,
        "offsite_volume": "projects_acme-prod_zones_us-central1-a_disks_db-data"})
    };
    // Two pages: the first names the next by nextPageToken, asked for as pageToken
    // (snapshots.list, "Response body").
    let page1 = json!({
        "kind": "compute#snapshotList",
        "id": "projects/acme-prod/global/snapshots",
        "items": [
            snapshot("offsite-db-data-aaaaaaaaaaaa", "READY", "2026-12-01T02:00:00.000+00:00", labels("20261201t020000z")),
            snapshot("offsite-db-data-bbbbbbbbbbbb", "READY", "2026-12-03T02:00:00.000+00:00", labels("20261203t020000z")),
        ],
        "nextPageToken": "page-2",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/acme-prod/global/snapshots",
    });
    let page2 = json!({
        "kind": "compute#snapshotList",
        "id": "projects/acme-prod/global/snapshots",
        "items": [
            snapshot("offsite-db-data-cccccccccccc", "READY", "2026-12-05T02:00:00.000+00:00", labels("20261205t020000z")),
            snapshot("offsite-db-data-dddddddddddd", "UPLOADING", "2026-12-07T02:00:00.000+00:00", labels("20261207t020000z")),
        ],
        "selfLink": "https://www.googleapis.com/compute/v1/projects/acme-prod/global/snapshots",
    });
    let delete_op = |n: &str| json!({"kind": "compute#operation", "name": format!("operation-delete-{n}"), "operationType": "delete", "status": "RUNNING", "progress": 0});
    let policy = sb.snapshot_policy(
        "db-gcp",
        "",
        &format!("[[snapshots]]\nprovider = \"gcp\"\nregion = \"us\"\nvolumes = [\"{DISK}\"]\nretention = {{ keep-last = 1 }}\n"),
    );
    let api = FakeApi::start(vec![
        call(LIST, "GET", snapshots_path(), page1)
            .query("filter", "(labels.offsite_policy = \"db-gcp\")")
            .query("maxResults", "500")
            // the client names an empty page token on the first page
            .query("pageToken", ""),
        call(LIST, "GET", snapshots_path(), page2)
            .query("filter", "(labels.offsite_policy = \"db-gcp\")")
            .query("maxResults", "500")
            .query("pageToken", "page-2"),
        call(
            DELETE,
            "DELETE",
            format!("{}/offsite-db-data-bbbbbbbbbbbb", snapshots_path()),
            delete_op("b"),
        )
        .query("requestId", "*"),
        call(
            DELETE,
            "DELETE",
            format!("{}/offsite-db-data-aaaaaaaaaaaa", snapshots_path()),
            delete_op("a"),
        )
        .query("requestId", "*"),
    ]);
    let o = policy_run(sb.gcp_cmd(&api), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("2 snapshot(s) deleted, 2 kept"), "{out}");
    assert!(
        out.contains("pending"),
        "the UPLOADING snapshot is kept as pending: {out}"
    );
    api.finish();
}

#[test]
fn contract_gcp_policy_select_finds_disks_by_label_across_zones() {
    let sb = Sandbox::new();
    let policy = sb.snapshot_policy(
        "db-gcp",
        "",
        &format!("[[snapshots]]\nprovider = \"gcp\"\nregion = \"us\"\nproject = \"{PROJECT}\"\nselect = \"backup=daily\"\n"),
    );
    let other = "projects/acme-prod/zones/us-east1-b/disks/logs";
    let disk = |path: &str| {
        json!({"kind": "compute#disk", "id": "118", "name": path.rsplit('/').next().unwrap(), "sizeGb": "10",
               "zone": format!("https://www.googleapis.com/compute/v1/{}", path.rsplit_once("/disks/").unwrap().0),
               "status": "READY", "labels": {"backup": "daily"},
               "selfLink": format!("https://www.googleapis.com/compute/v1/{path}")})
    };
    let aggregated = json!({
        "kind": "compute#diskAggregatedList",
        "id": "projects/acme-prod/aggregated/disks",
        "items": {
            "zones/us-central1-a": {"disks": [disk(DISK)]},
            "zones/us-east1-b": {"disks": [disk(other)]},
            "zones/europe-west1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'zones/europe-west1-b' on this page."}},
        },
        "selfLink": "https://www.googleapis.com/compute/v1/projects/acme-prod/aggregated/disks",
    });
    // (disk, name, token, volume label), written out as above
    let made = [
        (
            DISK,
            "offsite-db-data-cbc3d517770c",
            "6f83cb01e3738872ea257563",
            "projects_acme-prod_zones_us-central1-a_disks_db-data",
        ),
        (
            other,
            "offsite-logs-89b2f0b4a847",
            "8ce0e6a0f0edd1d32c0e97a5",
            "projects_acme-prod_zones_us-east1-b_disks_logs",
        ),
    ];
    let mut steps = vec![call(
        DISK_AGGREGATED,
        "GET",
        format!("/compute/v1/projects/{PROJECT}/aggregated/disks"),
        aggregated,
    )
    .query("filter", "labels.backup = \"daily\"")
    .query("pageToken", "")];
    // The disks in id order, each looked for by its token's name, then inserted; an operation
    // already DONE leaves nothing to follow without --wait.
    for (d, n, token, volume) in made {
        steps.push(
            call(
                GET,
                "GET",
                format!("{}/{n}", snapshots_path()),
                not_found(n),
            )
            .status(404),
        );
        steps.push(
            call(
                INSERT,
                "POST",
                snapshots_path(),
                operation(&format!("operation-{n}"), "DONE", 100, d),
            )
            .query("requestId", "*")
            .body(json!({"name": n, "sourceDisk": d, "storageLocations": ["us"], "description": "*",
                         "labels": {"offsite_policy": "db-gcp", "offsite_tool": "offsite", "offsite_created": "*",
                                    "offsite_token": token, "offsite_volume": volume}})),
        );
    }
    let api = FakeApi::start(steps);
    let o = policy_run(
        sb.gcp_cmd(&api),
        &["snapshot", "create", "--token", "run-s"],
        &policy,
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.matches(" created").count(), 2, "{out}");
    api.finish();
}

#[test]
fn gcp_a_malformed_id_is_a_usage_error_that_shows_the_form() {
    let sb = Sandbox::new();
    let api = FakeApi::start(vec![]);
    let o = gcp(
        &sb,
        &api,
        "restore",
        &[
            "db-snap-1",
            "--project",
            PROJECT,
            "--to-volume",
            "x",
            "--zone",
            "us-central1-a",
        ],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("not a snapshot id; write projects/PROJECT/global/snapshots/NAME"),
        "{}",
        stderr(&o)
    );
    api.finish();
}

#[test]
fn gcp_copy_to_is_refused_with_the_reason() {
    let sb = Sandbox::new();
    let o = sb
        .cmd()
        .args([
            "snapshot",
            "create",
            "--provider",
            "gcp",
            "--volume",
            DISK,
            "--copy-to",
            "europe-west1",
        ])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("GCP standard snapshots cannot be copied between regions"),
        "{}",
        stderr(&o)
    );
}
