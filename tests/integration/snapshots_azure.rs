//! Azure managed-disk snapshots: contract tests. Azurite has no Resource Manager, so the real
//! adapter (ARM REST through an azure_core pipeline) talks to a local server that checks each
//! request against the REST reference and answers with its documented examples:
//! - Snapshots - Create Or Update: https://learn.microsoft.com/rest/api/compute/snapshots/create-or-update
//!   (Copy from a disk; CopyStart from an incremental snapshot in another region:
//!   https://learn.microsoft.com/azure/virtual-machines/disks-copy-incremental-snapshot-across-regions)
//! - Snapshots - Get: https://learn.microsoft.com/rest/api/compute/snapshots/get
//! - Snapshots - List By Resource Group: https://learn.microsoft.com/rest/api/compute/snapshots/list-by-resource-group
//! - Snapshots - Delete: https://learn.microsoft.com/rest/api/compute/snapshots/delete
//! - Disks - Get, Create Or Update: https://learn.microsoft.com/rest/api/compute/disks/get,
//!   https://learn.microsoft.com/rest/api/compute/disks/create-or-update
//! - Azure-AsyncOperation polling: https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations
//! - errors: https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors
//!
//! Every request must carry the bearer token (here from OFFSITE_AZURE_ACCESS_TOKEN) and
//! api-version 2024-03-02.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::fake_api::{FakeApi, Step};

const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app";
const TOKEN: &str = "PlantedArmBearerToken0123456789";
const API: &str = "2024-03-02";

const SNAP_PUT: &str = "https://learn.microsoft.com/rest/api/compute/snapshots/create-or-update";
const SNAP_GET: &str = "https://learn.microsoft.com/rest/api/compute/snapshots/get";
const SNAP_LIST: &str =
    "https://learn.microsoft.com/rest/api/compute/snapshots/list-by-resource-group";
const SNAP_DELETE: &str = "https://learn.microsoft.com/rest/api/compute/snapshots/delete";
const DISK_GET: &str = "https://learn.microsoft.com/rest/api/compute/disks/get";
const ASYNC: &str =
    "https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations";

fn disk_id() -> String {
    format!("{RG}/providers/Microsoft.Compute/disks/db-data")
}

fn snap_id(name: &str) -> String {
    format!("{RG}/providers/Microsoft.Compute/snapshots/{name}")
}

// The names offsite gives, written out (not computed by the code under test): a rerun finds
// what an earlier run made by its name, so a change of naming would make every rerun after an
// upgrade snapshot again, and these tests must fail when names change.
/// `snapshot create --volume DISK --token run-N` (policy `adhoc`, region `default`).
const RUN_1: &str = "offsite-db-data-950ba160fee1";
const RUN_2: &str = "offsite-db-data-f4ce4ef23e2d";
const RUN_4: &str = "offsite-db-data-3002b8b3954d";
const RUN_5: &str = "offsite-db-data-cf36841de781";
/// The token tag of RUN_1's snapshot.
const RUN_1_TOKEN: &str = "14480e9e9a6178277f0631ae";
/// The copies of RUN_1 and RUN_2 from eastus to westus2.
const RUN_1_COPY: &str = "offsite-db-data-950ba160fee1-4c3a7bf4bdf2";
const RUN_1_COPY_TOKEN: &str = "f1a0b73f431bdeaafef4cf34";
const RUN_2_COPY: &str = "offsite-db-data-f4ce4ef23e2d-5a1652c17f28";

/// A ARM request step: the token and the api-version checked on every one.
fn arm(doc: &'static str, method: &'static str, path: impl Into<String>, answer: Value) -> Step {
    Step::new(doc, method, path, answer)
        .auth(format!("Bearer {TOKEN}"))
        .query("api-version", API)
}

/// A poll of an operation URL made by [`operation_url`] (its query kept as ARM gave it).
fn poll(path: String, answer: Value) -> Step {
    arm(ASYNC, "GET", path, answer).query("p", "1")
}

/// Snapshots - Get's example (an incremental snapshot), for `id` in `location`.
fn snapshot(id: &str, location: &str, state: &str, extra: Value) -> Value {
    let mut v = json!({
        "properties": {
            "creationData": {
                "createOption": "Copy",
                "sourceResourceId": disk_id(),
                "sourceUniqueId": "d633885d-d102-4481-901e-5b2413d1a7be"
            },
            "diskSizeGB": 100,
            "incremental": true,
            "diskState": "0",
            "diskSizeBytes": 10737418240u64,
            "uniqueId": "a395e9c1-fb9e-446e-a9ba-7b2fa0bcd305",
            "timeCreated": "2026-12-07T02:00:35.079872+00:00",
            "provisioningState": state
        },
        "type": "Microsoft.Compute/snapshots",
        "location": location,
        "tags": { "offsite-tool": "offsite", "offsite-policy": "adhoc", "offsite-volume": disk_id(), "offsite-created": "20261207t020000z" },
        "id": id,
        "name": id.rsplit('/').next().unwrap()
    });
    if let (Some(p), Some(e)) = (v["properties"].as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            p.insert(k.clone(), x.clone());
        }
    }
    v
}

fn not_found(kind: &str, name: &str) -> Value {
    json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource 'Microsoft.Compute/{kind}/{name}' under resource group 'rg-app' was not found.")}})
}

fn operation_url(location: &str, op: &str) -> String {
    format!("{{base}}/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Compute/locations/{location}/DiskOperations/{op}?p=1&api-version={API}")
}

fn operation_path(location: &str, op: &str) -> String {
    format!("/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Compute/locations/{location}/DiskOperations/{op}")
}

impl Sandbox {
    fn azure_disk_cmd(&self, api: &FakeApi) -> assert_cmd::Command {
        let mut c = self.cmd();
        c.env("OFFSITE_AZURE_ARM_ENDPOINT", &api.url)
            .env("OFFSITE_AZURE_ACCESS_TOKEN", TOKEN)
            .env("OFFSITE_SNAPSHOT_POLL_SECONDS", "0.05")
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env_remove("AZURE_CLIENT_SECRET");
        c
    }
}

/// `offsite snapshot SUB --provider azure ARGS...` against the fake API.
fn azure(sb: &Sandbox, api: &FakeApi, sub: &str, args: &[&str]) -> std::process::Output {
    sb.azure_disk_cmd(api)
        .args(["snapshot", sub, "--provider", "azure"])
        .args(args)
        .output()
        .unwrap()
}

fn disk() -> Value {
    json!({
        "id": disk_id(), "name": "db-data", "location": "eastus", "type": "Microsoft.Compute/disks",
        "sku": {"name": "Premium_LRS", "tier": "Premium"},
        "properties": {"diskSizeGB": 100, "diskState": "Attached", "provisioningState": "Succeeded",
                       "timeCreated": "2026-01-10T09:00:00.1234567+00:00", "creationData": {"createOption": "Empty"}}
    })
}

#[test]
fn contract_azure_snapshot_create_polls_the_async_operation_and_copies_across_regions() {
    let sb = Sandbox::new();
    let (name, copy) = (RUN_1, RUN_1_COPY);
    let id = snap_id(name);
    let copy_id = snap_id(copy);
    let copy_of = |state: &str, extra: Value| {
        let mut s = snapshot(&copy_id, "westus2", state, extra);
        s["properties"]["creationData"] =
            json!({"createOption": "CopyStart", "sourceResourceId": id});
        s
    };
    let api = FakeApi::start(vec![
        arm(DISK_GET, "GET", disk_id(), disk()),
        arm(SNAP_GET, "GET", id.clone(), not_found("snapshots", name)).status(404),
        arm(SNAP_PUT, "PUT", id.clone(), snapshot(&id, "eastus", "Updating", json!({})))
            .status(202)
            .header("azure-asyncoperation", operation_url("eastus", "op1"))
            .body(json!({
                "location": "eastus",
                "tags": {"offsite-tool": "offsite", "offsite-policy": "adhoc", "offsite-volume": disk_id(), "offsite-created": "*", "offsite-token": RUN_1_TOKEN},
                "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id()}, "incremental": true}
            })),
        poll(operation_path("eastus", "op1"), json!({"startTime": "2026-12-07T02:00:36.1+00:00", "status": "InProgress", "name": "op1"})),
        poll(operation_path("eastus", "op1"), json!({"startTime": "2026-12-07T02:00:36.1+00:00", "endTime": "2026-12-07T02:01:06.1+00:00", "status": "Succeeded", "name": "op1"})),
        arm(SNAP_GET, "GET", id.clone(), snapshot(&id, "eastus", "Succeeded", json!({}))),
        // the copy: CopyStart in the target region, usable at completionPercent 100
        arm(SNAP_GET, "GET", copy_id.clone(), not_found("snapshots", copy)).status(404),
        arm(SNAP_PUT, "PUT", copy_id.clone(), copy_of("Updating", json!({})))
            .status(202)
            .header("azure-asyncoperation", operation_url("westus2", "op2"))
            .body(json!({
                "location": "westus2",
                "tags": {"offsite-source": id, "offsite-source-region": "eastus", "offsite-volume": disk_id(), "offsite-policy": "adhoc",
                         "offsite-tool": "offsite", "offsite-created": "20261207t020000z", "offsite-token": RUN_1_COPY_TOKEN},
                "properties": {"creationData": {"createOption": "CopyStart", "sourceResourceId": id}, "incremental": true}
            })),
        poll(operation_path("westus2", "op2"), json!({"status": "Succeeded", "name": "op2"})),
        arm(SNAP_GET, "GET", copy_id.clone(), copy_of("Succeeded", json!({"completionPercent": 42.0}))),
        arm(SNAP_GET, "GET", copy_id.clone(), copy_of("Succeeded", json!({"completionPercent": 100.0}))),
    ]);
    let o = azure(
        &sb,
        &api,
        "create",
        &[
            "--volume",
            &disk_id(),
            "--token",
            "run-1",
            "--copy-to",
            "westus2",
            "--wait",
            "--json",
        ],
    );
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["snapshots"][0];
    assert_eq!(s["snapshot"]["id"], id.as_str(), "{v}");
    assert_eq!(s["snapshot"]["state"], "completed", "{v}");
    assert_eq!(s["copies"][0]["snapshot"]["id"], copy_id.as_str(), "{v}");
    assert_eq!(s["copies"][0]["snapshot"]["state"], "completed", "{v}");
    assert_eq!(s["copies"][0]["snapshot"]["region"], "westus2", "{v}");
    api.finish();
}

#[test]
fn contract_azure_snapshot_copy_that_fails_at_the_provider_exits_3_with_its_reason() {
    let sb = Sandbox::new();
    let (name, copy) = (RUN_2, RUN_2_COPY);
    let id = snap_id(name);
    let copy_id = snap_id(copy);
    let mut broken = snapshot(
        &copy_id,
        "westus2",
        "Succeeded",
        json!({"completionPercent": 17.0,
        "copyCompletionError": {"errorCode": "CopySourceNotFound", "errorMessage": "The source snapshot was deleted while the copy was in progress."}}),
    );
    broken["properties"]["creationData"] =
        json!({"createOption": "CopyStart", "sourceResourceId": id});
    let api = FakeApi::start(vec![
        arm(DISK_GET, "GET", disk_id(), disk()),
        // the token's snapshot is there already (an earlier run): found, not made again
        arm(
            SNAP_GET,
            "GET",
            id.clone(),
            snapshot(&id, "eastus", "Succeeded", json!({})),
        ),
        arm(
            SNAP_GET,
            "GET",
            copy_id.clone(),
            not_found("snapshots", copy),
        )
        .status(404),
        arm(SNAP_PUT, "PUT", copy_id.clone(), broken.clone()).body(json!({
            "location": "westus2",
            "tags": {"offsite-source": id, "offsite-source-region": "eastus", "offsite-volume": disk_id(), "offsite-policy": "adhoc",
                     "offsite-tool": "offsite", "offsite-created": "20261207t020000z", "offsite-token": "*"},
            "properties": {"creationData": {"createOption": "CopyStart", "sourceResourceId": id}, "incremental": true}
        })),
    ]);
    let o = azure(
        &sb,
        &api,
        "create",
        &[
            "--volume",
            &disk_id(),
            "--token",
            "run-2",
            "--copy-to",
            "westus2",
        ],
    );
    assert_code(&o, 3);
    assert!(stdout(&o).contains("found (same token)"), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("CopySourceNotFound") && e.contains("deleted while the copy"),
        "{e}"
    );
    api.finish();
}

#[test]
fn contract_azure_permission_denied_is_named_with_the_role_to_grant() {
    let sb = Sandbox::new();
    let api = FakeApi::start(vec![arm(DISK_GET, "GET", disk_id(), json!({"error": {"code": "AuthorizationFailed",
        "message": "The client 'app' with object id '1111' does not have authorization to perform action 'Microsoft.Compute/disks/read' over scope '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app/providers/Microsoft.Compute/disks/db-data'."}}))
        .status(403)]);
    let o = azure(
        &sb,
        &api,
        "create",
        &["--volume", &disk_id(), "--token", "run-3"],
    );
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains("AuthorizationFailed") && e.contains("Disk Snapshot Contributor"),
        "{e}"
    );
    assert!(!e.contains(TOKEN), "the token never reaches an error: {e}");
    api.finish();
}

#[test]
fn contract_azure_bearer_token_never_reaches_output_even_at_trace() {
    let sb = Sandbox::new();
    let id = snap_id(RUN_5);
    let api = FakeApi::start(vec![
        arm(DISK_GET, "GET", disk_id(), disk()),
        arm(SNAP_GET, "GET", id.clone(), snapshot(&id, "eastus", "Succeeded", json!({}))),
        arm(DISK_GET, "GET", disk_id(), json!({"error": {"code": "ExpiredAuthenticationToken",
            "message": "The access token expiry UTC time '12/7/2026 1:00:00 AM' is earlier than current UTC time."}}))
            .status(401),
    ]);
    for (args, code) in [
        (vec!["-vvv", "--json", "snapshot", "create"], 0),
        (vec!["-vvv", "snapshot", "create"], 1),
    ] {
        let o = sb
            .azure_disk_cmd(&api)
            .env("RUST_LOG", "trace")
            .args(args)
            .args([
                "--provider",
                "azure",
                "--volume",
                &disk_id(),
                "--token",
                "run-5",
            ])
            .output()
            .unwrap();
        assert_code(&o, code);
        for text in [stdout(&o), stderr(&o)] {
            assert!(
                !text.contains(TOKEN),
                "the bearer token is in the output:\n{text}"
            );
        }
        if code == 1 {
            let e = stderr(&o);
            assert!(
                e.contains("ExpiredAuthenticationToken") && e.contains("sign in again"),
                "{e}"
            );
        }
    }
    api.finish();
}

#[test]
fn contract_azure_operation_url_on_another_host_is_not_followed() {
    let sb = Sandbox::new();
    let name = RUN_4;
    let id = snap_id(name);
    let api = FakeApi::start(vec![
        arm(DISK_GET, "GET", disk_id(), disk()),
        arm(SNAP_GET, "GET", id.clone(), not_found("snapshots", name)).status(404),
        arm(
            SNAP_PUT,
            "PUT",
            id.clone(),
            snapshot(&id, "eastus", "Updating", json!({})),
        )
        .body(json!({
            "location": "eastus",
            "tags": {"offsite-tool": "offsite", "offsite-policy": "adhoc", "offsite-volume": disk_id(), "offsite-created": "*", "offsite-token": "*"},
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id()}, "incremental": true}
        }))
        .status(202)
        .header(
            "azure-asyncoperation",
            "https://attacker.example/steal?api-version=2024-03-02",
        ),
    ]);
    let o = azure(
        &sb,
        &api,
        "create",
        &["--volume", &disk_id(), "--token", "run-4"],
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("ARM pointed at another host (attacker.example); not followed"),
        "{}",
        stderr(&o)
    );
    api.finish();
}

#[test]
fn contract_azure_snapshot_prune_by_policy_keeps_each_regions_own_retention() {
    let sb = Sandbox::new();
    let policy = sb.snapshot_policy(
        "db-azure",
        "",
        &format!(
            "[[snapshots]]\nprovider = \"azure\"\nregion = \"eastus\"\nvolumes = [\"{}\"]\nretention = {{ keep-last = 2 }}\n\
             copy-to = [{{ region = \"westus2\", retention = {{ keep-last = 1 }} }}]\n",
            disk_id()
        ),
    );
    let item = |name: &str, location: &str, created: &str| {
        let mut s = snapshot(&snap_id(name), location, "Succeeded", json!({}));
        s["tags"]["offsite-policy"] = json!("db-azure");
        s["tags"]["offsite-created"] = json!(created);
        s
    };
    let list = json!({"value": [
        item("e1", "eastus", "20261201t020000z"), item("e2", "eastus", "20261202t020000z"), item("e3", "eastus", "20261203t020000z"),
        item("w1", "westus2", "20261201t020000z"), item("w2", "westus2", "20261202t020000z"),
        // another policy's snapshot in the same resource group is not this policy's
        json!({"id": snap_id("other"), "name": "other", "location": "eastus", "tags": {"offsite-policy": "other"},
               "properties": {"provisioningState": "Succeeded", "timeCreated": "2020-01-01T00:00:00+00:00"}}),
    ]});
    let list_path = format!("{RG}/providers/Microsoft.Compute/snapshots");
    let api = FakeApi::start(vec![
        arm(SNAP_LIST, "GET", list_path.clone(), list.clone()),
        arm(SNAP_LIST, "GET", list_path.clone(), list.clone()),
        arm(SNAP_DELETE, "DELETE", snap_id("e1"), json!({}))
            .status(202)
            .header("location", operation_url("eastus", "del-e1")),
        poll(operation_path("eastus", "del-e1"), json!({})).status(200),
        arm(SNAP_DELETE, "DELETE", snap_id("w1"), json!({})),
    ]);
    let o = policy_run(sb.azure_disk_cmd(&api), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("2 snapshot(s) deleted, 3 kept"), "{out}");
    api.finish();
}

/// A list that spans two pages (`nextLink`, Snapshots - List By Resource Group: "The uri to
/// fetch the next page of snapshots"), and a delete that ARM accepts and finishes later,
/// followed as Azure-AsyncOperation polling documents it: each poll no sooner than the
/// `Retry-After` seconds of the answer before it, and a poll that fails transiently (a 500,
/// a dropped connection) asked again rather than taken for the delete's failure.
#[test]
fn contract_azure_snapshot_prune_follows_next_link_and_waits_as_retry_after_says() {
    let sb = Sandbox::new();
    let policy = sb.snapshot_policy(
        "db-azure",
        "",
        &format!(
            "[[snapshots]]\nprovider = \"azure\"\nregion = \"eastus\"\nvolumes = [\"{}\"]\nretention = {{ keep-last = 1 }}\n",
            disk_id()
        ),
    );
    let item = |name: &str, created: &str| {
        let mut s = snapshot(&snap_id(name), "eastus", "Succeeded", json!({}));
        s["tags"]["offsite-policy"] = json!("db-azure");
        s["tags"]["offsite-created"] = json!(created);
        s
    };
    let list_path = format!("{RG}/providers/Microsoft.Compute/snapshots");
    let page1 = json!({
        "value": [item("e1", "20261201t020000z"), item("e2", "20261202t020000z")],
        "nextLink": format!("{{base}}{list_path}?api-version={API}&$skiptoken=page-2"),
    });
    let page2 = json!({"value": [item("e3", "20261203t020000z")]});
    let running = json!({"startTime": "2026-12-07T02:00:36.1+00:00", "status": "InProgress", "name": "del-e2"});
    let second = Duration::from_secs(1);
    let api = FakeApi::start(vec![
        arm(SNAP_LIST, "GET", list_path.clone(), page1),
        arm(SNAP_LIST, "GET", list_path.clone(), page2).query("$skiptoken", "page-2"),
        arm(SNAP_DELETE, "DELETE", snap_id("e2"), json!({}))
            .status(202)
            .header("azure-asyncoperation", operation_url("eastus", "del-e2"))
            .header("location", operation_url("eastus", "del-e2-location"))
            .header("retry-after", "1"),
        poll(operation_path("eastus", "del-e2"), running.clone())
            .not_sooner_than(second)
            .header("retry-after", "1"),
        poll(operation_path("eastus", "del-e2"), running.clone()).not_sooner_than(second),
        // ARM's own trouble while the delete runs: asked again, not the delete's failure
        poll(operation_path("eastus", "del-e2"), json!({"error": {"code": "InternalServerError",
            "message": "Encountered internal server error. Diagnostic information: timestamp '20261207T020040Z'."}}))
            .status(500),
        poll(operation_path("eastus", "del-e2"), json!({})).reset(),
        poll(operation_path("eastus", "del-e2"), json!({"startTime": "2026-12-07T02:00:36.1+00:00",
            "endTime": "2026-12-07T02:00:41.1+00:00", "status": "Succeeded", "name": "del-e2"})),
        // a delete ARM finishes at once (200)
        arm(SNAP_DELETE, "DELETE", snap_id("e1"), json!({})),
    ]);
    let o = policy_run(sb.azure_disk_cmd(&api), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("2 snapshot(s) deleted, 1 kept"), "{out}");
    api.finish();
}
