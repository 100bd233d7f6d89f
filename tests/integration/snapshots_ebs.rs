//! EBS snapshots end to end on moto: volumes made with boto3 (moto's own venv), then offsite
//! snapshot create (tags, a rerun that finds the first run's snapshots, a copy to a second
//! region, an instance's volumes together), list by tag, status, prune by each region's own
//! retention, restore to a new volume, and the errors a user meets.

use serde_json::Value;

use crate::common::*;

/// Runs a boto3 script against moto's EC2 and returns its stdout.
fn boto(script: &str) -> String {
    let moto = emulator("OFFSITE_TEST_MOTO");
    let full = format!(
        "import boto3, json, sys\n\
         def ec2(region):\n    return boto3.client('ec2', endpoint_url='{moto}', region_name=region, aws_access_key_id='x', aws_secret_access_key='y')\n\
         {script}"
    );
    moto_python(&full)
}

impl Sandbox {
    fn ebs_cmd(&self) -> assert_cmd::Command {
        let mut c = self.s3_cmd();
        c.env("AWS_ENDPOINT_URL", emulator("OFFSITE_TEST_MOTO"))
            .env("OFFSITE_SNAPSHOT_POLL_SECONDS", "0.05");
        c
    }
}

/// `offsite snapshot SUB --provider aws --region REGION ARGS...` on moto.
fn aws(sb: &Sandbox, sub: &str, region: &str, args: &[&str]) -> std::process::Output {
    sb.ebs_cmd()
        .args(["snapshot", sub, "--provider", "aws", "--region", region])
        .args(args)
        .output()
        .unwrap()
}

/// Snapshot ids of a policy in a region, by volume tag, as moto holds them.
fn snapshots_of(region: &str, policy: &str) -> Vec<(String, String)> {
    let out = boto(&format!(
        "r = ec2('{region}').describe_snapshots(Filters=[{{'Name': 'tag:offsite-policy', 'Values': ['{policy}']}}])['Snapshots']\n\
         print(json.dumps([[s['SnapshotId'], dict((t['Key'], t['Value']) for t in s.get('Tags', [])).get('offsite-volume', s['VolumeId'])] for s in r]))"
    ));
    let v: Vec<(String, String)> = serde_json::from_str(&out).unwrap();
    v
}

#[test]
fn ebs_snapshots_by_tag_copied_to_a_second_region_pruned_per_region_and_restored() {
    let sb = Sandbox::new();
    let tag = format!("t{:08x}", rand_u32());
    let policy_name = format!("ebs-{tag}");
    let vols = boto(&format!(
        "c = ec2('us-east-1')\n\
         ids = [c.create_volume(AvailabilityZone='us-east-1a', Size=s, TagSpecifications=[{{'ResourceType': 'volume', 'Tags': [{{'Key': 'backup', 'Value': '{tag}'}}]}}])['VolumeId'] for s in (8, 16)]\n\
         c.create_volume(AvailabilityZone='us-east-1a', Size=4)\n\
         print(json.dumps(ids))"
    ));
    let mut vols: Vec<String> = serde_json::from_str(&vols).unwrap();
    vols.sort();
    let policy = sb.snapshot_policy(
        &policy_name,
        "rpo = \"26h\"",
        &format!(
            "[[snapshots]]\nprovider = \"aws\"\nregion = \"us-east-1\"\nselect = \"backup={tag}\"\n\
             retention = {{ keep-last = 2 }}\n\
             copy-to = [{{ region = \"us-west-2\", retention = {{ keep-last = 1 }} }}]\n"
        ),
    );

    // Three runs: the second has the first's token and makes nothing; two more tokens.
    let o = sb
        .ebs_cmd()
        .args([
            "--json", "snapshot", "create", "--token", "run-1", "--policy",
        ])
        .arg(&policy)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["snapshots"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for r in rows {
        assert_eq!(r["reused"], false, "{v}");
        assert_eq!(r["snapshot"]["state"], "completed", "{v}");
        assert_eq!(
            r["snapshot"]["tags"]["offsite-policy"],
            policy_name.as_str(),
            "{v}"
        );
        assert_eq!(r["snapshot"]["tags"]["offsite-tool"], "offsite", "{v}");
        assert_eq!(r["copies"][0]["region"], "us-west-2", "{v}");
        assert_eq!(
            r["copies"][0]["snapshot"]["tags"]["offsite-source"], r["snapshot"]["id"],
            "{v}"
        );
    }
    let o = policy_run(
        sb.ebs_cmd(),
        &["snapshot", "create", "--token", "run-1"],
        &policy,
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).matches("found (same token)").count(),
        2,
        "{}",
        stdout(&o)
    );
    assert_eq!(snapshots_of("us-east-1", &policy_name).len(), 2);
    assert_eq!(snapshots_of("us-west-2", &policy_name).len(), 2);
    for t in ["run-2", "run-3"] {
        let o = policy_run(sb.ebs_cmd(), &["snapshot", "create", "--token", t], &policy);
        assert_code(&o, 0);
    }
    assert_eq!(snapshots_of("us-east-1", &policy_name).len(), 6);
    assert_eq!(snapshots_of("us-west-2", &policy_name).len(), 6);

    // list and status read both regions
    let o = policy_run(sb.ebs_cmd(), &["--json", "snapshot", "list"], &policy);
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 12, "{v}");
    // A policy of snapshots alone: status judges them, with no archives to miss.
    let o = policy_run(sb.ebs_cmd(), &["status"], &policy);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("volume snapshots only (1 [[snapshots]] section(s))")
            && !stdout(&o).contains("DESTINATION"),
        "{}",
        stdout(&o)
    );
    let o = policy_run(sb.ebs_cmd(), &["--json", "status"], &policy);
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 4, "two volumes in two regions: {v}");
    for s in snaps {
        assert_eq!(s["completed"], 3, "{v}");
        assert_eq!(s["fresh"], true, "{v}");
        assert!(
            vols.contains(&s["volume"].as_str().unwrap().to_string()),
            "{v}"
        );
    }

    // prune: a dry run and a refused run change nothing; then each region's own rule
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune", "--dry-run"], &policy);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("6 snapshot(s) would be deleted"),
        "{}",
        stdout(&o)
    );
    let o = policy_run(
        sb.ebs_cmd(),
        &["snapshot", "prune", "--max-delete", "2"],
        &policy,
    );
    assert_code(&o, 5);
    assert!(stderr(&o).contains("max-delete 2"), "{}", stderr(&o));
    assert_eq!(snapshots_of("us-east-1", &policy_name).len(), 6);
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    let east = snapshots_of("us-east-1", &policy_name);
    let west = snapshots_of("us-west-2", &policy_name);
    assert_eq!(east.len(), 4, "keep-last 2 per volume: {east:?}");
    assert_eq!(
        west.len(),
        2,
        "keep-last 1 per volume in the copy region: {west:?}"
    );
    for v in &vols {
        assert_eq!(
            east.iter().filter(|(_, vol)| vol == v).count(),
            2,
            "{east:?}"
        );
        assert_eq!(
            west.iter().filter(|(_, vol)| vol == v).count(),
            1,
            "{west:?}"
        );
    }

    // A snapshot with the policy's tag and a section's name (one a section of that name made,
    // since renamed) belongs to no unnamed section: neither judged nor pruned by this one.
    let foreign = boto(&format!(
        "print(ec2('us-east-1').create_snapshot(VolumeId='{}', TagSpecifications=[{{'ResourceType': 'snapshot', 'Tags': [{{'Key': 'offsite-policy', 'Value': '{policy_name}'}}, {{'Key': 'offsite-section', 'Value': 'old'}}, {{'Key': 'offsite-created', 'Value': '20200101t000000z'}}]}}])['SnapshotId'])",
        vols[0]
    ));
    let o = policy_run(sb.ebs_cmd(), &["--json", "status"], &policy);
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["completed"] == 2 || s["completed"] == 1),
        "{v}"
    );
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains(&foreign), "{}", stdout(&o));
    assert!(snapshots_of("us-east-1", &policy_name)
        .iter()
        .any(|(id, _)| *id == foreign));
    // list --policy shows it apart: no section's retention reaches it.
    let o = policy_run(sb.ebs_cmd(), &["--json", "snapshot", "list"], &policy);
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let unclaimed: Vec<&str> = v["unclaimed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(unclaimed, [foreign.as_str()], "{v}");
    assert!(
        !v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == foreign.as_str()),
        "{v}"
    );
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "list"], &policy);
    assert!(
        stdout(&o).contains("1 snapshot(s) carry the policy's tag but no section holds them")
            && stdout(&o).contains("section old"),
        "{}",
        stdout(&o)
    );

    // restore the copy in us-west-2 to a new volume
    let (copy, _) = &west[0];
    let o = aws(
        &sb,
        "restore",
        "us-west-2",
        &[
            copy,
            "--to-volume",
            "db-restored",
            "--zone",
            "us-west-2a",
            "--volume-type",
            "gp3",
            "--wait",
        ],
    );
    assert_code(&o, 0);
    let made = boto(&format!(
        "r = ec2('us-west-2').describe_volumes(Filters=[{{'Name': 'snapshot-id', 'Values': ['{copy}']}}])['Volumes']\n\
         print(json.dumps([[v['VolumeId'], v['VolumeType'], dict((t['Key'], t['Value']) for t in v.get('Tags', []))] for v in r]))"
    ));
    let made: Vec<(String, String, Value)> = serde_json::from_str(&made).unwrap();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].1, "gp3");
    assert_eq!(made[0].2["Name"], "db-restored");
    assert!(stdout(&o).contains(&made[0].0), "{}", stdout(&o));
}

/// Two named sections keep EBS snapshots in one region, each by its own retention: each
/// section's snapshots carry its name, and status, metrics and prune judge only its own.
#[test]
fn ebs_named_sections_share_a_region_each_with_its_own_retention() {
    let sb = Sandbox::new();
    let tag = format!("t{:08x}", rand_u32());
    let policy_name = format!("two-{tag}");
    let vols = boto(&format!(
        "c = ec2('us-east-1')\n\
         db = c.create_volume(AvailabilityZone='us-east-1a', Size=8)['VolumeId']\n\
         web = c.create_volume(AvailabilityZone='us-east-1a', Size=4, TagSpecifications=[{{'ResourceType': 'volume', 'Tags': [{{'Key': 'role', 'Value': '{tag}'}}]}}])['VolumeId']\n\
         print(json.dumps([db, web]))"
    ));
    let [db, web]: [String; 2] = serde_json::from_str(&vols).unwrap();
    let policy = sb.snapshot_policy(
        &policy_name,
        "rpo = \"26h\"",
        &format!(
            "[[snapshots]]\nname = \"db\"\nprovider = \"aws\"\nregion = \"us-east-1\"\nvolumes = [\"{db}\"]\nretention = {{ keep-last = 3 }}\n\
             copy-to = [{{ region = \"us-west-2\", retention = {{ keep-last = 2 }} }}]\n\
             [[snapshots]]\nname = \"web\"\nprovider = \"aws\"\nregion = \"us-east-1\"\nselect = \"role={tag}\"\nretention = {{ keep-last = 1 }}\n"
        ),
    );
    for t in ["run-1", "run-2", "run-3"] {
        let o = policy_run(sb.ebs_cmd(), &["snapshot", "create", "--token", t], &policy);
        assert_code(&o, 0);
    }
    let sections = boto(&format!(
        "r = ec2('us-east-1').describe_snapshots(Filters=[{{'Name': 'tag:offsite-policy', 'Values': ['{policy_name}']}}])['Snapshots']\n\
         print(json.dumps(sorted([[s['VolumeId'], dict((t['Key'], t['Value']) for t in s['Tags'])['offsite-section']] for s in r])))"
    ));
    let sections: Vec<(String, String)> = serde_json::from_str(&sections).unwrap();
    assert_eq!(sections.len(), 6, "{sections:?}");
    for (v, n) in &sections {
        assert_eq!(n, if *v == db { "db" } else { "web" }, "{sections:?}");
    }
    // The copies carry the section's name along.
    let copies = boto(&format!(
        "r = ec2('us-west-2').describe_snapshots(Filters=[{{'Name': 'tag:offsite-section', 'Values': ['db']}}, {{'Name': 'tag:offsite-policy', 'Values': ['{policy_name}']}}])['Snapshots']\n\
         print(len(r))"
    ));
    assert_eq!(copies, "3");

    let metrics = sb.path("status.prom");
    let o = policy_run(
        sb.ebs_cmd(),
        &[
            "--json",
            "status",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
        &policy,
    );
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["snapshots"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        3,
        "db in two regions and web in one, not both volumes in both sections: {v}"
    );
    for r in rows {
        let want = if r["volume"] == db.as_str() {
            "db"
        } else {
            "web"
        };
        assert_eq!(r["section"], want, "{v}");
        assert_eq!(r["completed"], 3, "{v}");
    }
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("section=\"db\"") && prom.contains(&format!("volume=\"{web}\"")),
        "{prom}"
    );
    // A policy of snapshots alone: no placement to report, and no rule unmet.
    assert!(!prom.contains("offsite_placement_met"), "{prom}");
    assert!(
        prom.lines()
            .any(|l| l.starts_with("offsite_rules_unmet{") && l.ends_with(" 0")),
        "{prom}"
    );

    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &policy);
    assert_code(&o, 0);
    let left = snapshots_of("us-east-1", &policy_name);
    assert_eq!(
        left.iter().filter(|(_, v)| *v == db).count(),
        3,
        "db keeps its last 3: {left:?}"
    );
    assert_eq!(
        left.iter().filter(|(_, v)| *v == web).count(),
        1,
        "web keeps its last 1: {left:?}"
    );
    assert_eq!(
        snapshots_of("us-west-2", &policy_name).len(),
        2,
        "db's copies keep their last 2"
    );
}

/// A volume taken out of a section's `volumes` is retired: status shows it without an rpo, and
/// prune applies its retention without the rpo rail (its newest stays); while it is listed,
/// its stale snapshots are late in status and stop prune.
#[test]
fn ebs_a_volume_retired_from_the_section_is_pruned_without_the_rpo_rail() {
    let sb = Sandbox::new();
    let tag = format!("t{:08x}", rand_u32());
    let policy_name = format!("ret-{tag}");
    // The old volume's snapshots are a month old (their offsite-created tag says so).
    let ids = boto(&format!(
        "c = ec2('us-east-1')\n\
         live = c.create_volume(AvailabilityZone='us-east-1a', Size=8)['VolumeId']\n\
         old = c.create_volume(AvailabilityZone='us-east-1a', Size=8)['VolumeId']\n\
         for d in ('20261101t020000z', '20261102t020000z'):\n\
         \x20   c.create_snapshot(VolumeId=old, TagSpecifications=[{{'ResourceType': 'snapshot', 'Tags': [{{'Key': 'offsite-policy', 'Value': '{policy_name}'}}, {{'Key': 'offsite-volume', 'Value': old}}, {{'Key': 'offsite-created', 'Value': d}}]}}])\n\
         print(json.dumps([live, old]))"
    ));
    let [live, old]: [String; 2] = serde_json::from_str(&ids).unwrap();
    let write = |volumes: &str| {
        sb.snapshot_policy(
            &policy_name,
            "rpo = \"26h\"",
            &format!(
                "[[snapshots]]\nprovider = \"aws\"\nregion = \"us-east-1\"\nvolumes = [{volumes}]\nretention = {{ keep-last = 1 }}\n"
            ),
        )
    };
    let live_only = format!("\"{live}\"");
    let both = format!("\"{live}\", \"{old}\"");
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "create"], &write(&live_only));
    assert_code(&o, 0);

    // Still listed, the old volume is late: status says so and prune is refused.
    let o = policy_run(sb.ebs_cmd(), &["status"], &write(&both));
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains(&format!("the newest completed snapshot of {old}")),
        "{}",
        stderr(&o)
    );
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &write(&both));
    assert_code(&o, 5);
    assert_eq!(snapshots_of("us-east-1", &policy_name).len(), 3);

    // Taken out of the section, it is retired: no rpo, its retention applies, its newest stays.
    let prom = sb.path("retired.prom");
    let o = policy_run(
        sb.ebs_cmd(),
        &["status", "--metrics-file", prom.to_str().unwrap()],
        &write(&live_only),
    );
    assert_code(&o, 0);
    let prom = std::fs::read_to_string(&prom).unwrap();
    let of_old: Vec<&str> = prom.lines().filter(|l| l.contains(&old)).collect();
    assert!(
        of_old
            .iter()
            .any(|l| l.starts_with("offsite_snapshot_retired{"))
            && !of_old.iter().any(|l| l.contains("age_seconds")),
        "{prom}"
    );
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.contains(&old) && l.contains("retired")),
        "{}",
        stdout(&o)
    );
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &write(&live_only));
    assert_code(&o, 0);
    assert!(stdout(&o).contains("volume retired"), "{}", stdout(&o));
    let left = snapshots_of("us-east-1", &policy_name);
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(
        left.iter().filter(|(_, v)| *v == old).count(),
        1,
        "{left:?}"
    );
}

#[test]
fn ebs_instance_volumes_are_snapshotted_together() {
    let sb = Sandbox::new();
    let ids = boto(
        "c = ec2('us-east-1')\n\
         ami = c.describe_images(Owners=['amazon'])['Images'][0]['ImageId']\n\
         i = c.run_instances(ImageId=ami, MinCount=1, MaxCount=1, Placement={'AvailabilityZone': 'us-east-1a'})['Instances'][0]['InstanceId']\n\
         v = c.create_volume(AvailabilityZone='us-east-1a', Size=5)['VolumeId']\n\
         c.attach_volume(VolumeId=v, InstanceId=i, Device='/dev/sdf')\n\
         print(json.dumps([i, v]))",
    );
    let (instance, data): (String, String) = serde_json::from_str(&ids).unwrap();
    let o = aws(
        &sb,
        "create",
        "us-east-1",
        &[
            "--json",
            "--instance",
            &instance,
            "--token",
            "together",
            "--wait",
        ],
    );
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["snapshots"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the boot volume and the data volume: {v}");
    assert!(rows.iter().any(|r| r["volume"] == data.as_str()), "{v}");
    for r in rows {
        assert_eq!(r["snapshot"]["state"], "completed", "{v}");
        assert_eq!(r["snapshot"]["tags"]["offsite-policy"], "adhoc", "{v}");
    }
    // a rerun with the token finds both
    let o = aws(
        &sb,
        "create",
        "us-east-1",
        &["--instance", &instance, "--token", "together"],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).matches("found (same token)").count(),
        2,
        "{}",
        stdout(&o)
    );
}

#[test]
fn ebs_errors_name_the_volume_the_region_and_the_fix() {
    let sb = Sandbox::new();
    let o = aws(
        &sb,
        "create",
        "us-east-1",
        &["--volume", "vol-0123456789abcdef0"],
    );
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains("vol-0123456789abcdef0")
            && e.contains("InvalidVolume.NotFound")
            && e.contains("no such volume in us-east-1"),
        "{e}"
    );

    let o = aws(&sb, "list", "us-east", &[]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unknown region \"us-east\""),
        "{}",
        stderr(&o)
    );

    let o = aws(&sb, "delete", "us-east-1", &["snap-0123456789abcdef0"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("InvalidSnapshot.NotFound"),
        "{}",
        stderr(&o)
    );

    let o = aws(
        &sb,
        "create",
        "us-east-1",
        &["--volume", "vol-1", "--tag", "offsite-section=db"],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("offsite-section is one of offsite's own tags"),
        "{}",
        stderr(&o)
    );

    let p = sb.snapshot_policy(
        "x",
        "",
        "[[snapshots]]\nprovider = \"aws\"\nvolumes = [\"vol-1\"]\ncopy-to = [{ region = \"us-west-2\", keep = 3 }]\n",
    );
    let o = policy_run(sb.ebs_cmd(), &["snapshot", "prune"], &p);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("copy-to entry"), "{}", stderr(&o));
}

#[cfg(feature = "azure-disk")]
#[test]
fn a_section_whose_provider_cannot_be_reached_fails_alone() {
    let sb = Sandbox::new();
    let tag = format!("t{:08x}", rand_u32());
    let vol = boto(
        "print(ec2('us-east-1').create_volume(AvailabilityZone='us-east-1a', Size=8)['VolumeId'])",
    );
    // Archives beside the snapshots, in one policy.
    let policy = sb.snapshot_policy(
        &format!("two-{tag}"),
        "",
        &format!(
            "[encryption]\nunencrypted = true\n[[destination]]\nname = \"local\"\nurl = \"{}\"\n\
             [[snapshots]]\nprovider = \"azure\"\nvolumes = [\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d\"]\n\
             [[snapshots]]\nprovider = \"aws\"\nregion = \"us-east-1\"\nvolumes = [\"{vol}\"]\n",
            sb.url("archives")
        ),
    );
    // Nothing listens on the discard port: Resource Manager cannot be reached.
    let cmd = || {
        let mut c = sb.ebs_cmd();
        c.env("OFFSITE_AZURE_ARM_ENDPOINT", "http://127.0.0.1:9")
            .env("OFFSITE_AZURE_ACCESS_TOKEN", "unused-token");
        c
    };
    let o = policy_run(cmd(), &["snapshot", "create"], &policy);
    assert_code(&o, 1);
    assert!(
        stderr(&o)
            .contains("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains(&format!("us-east-1 {vol} snap-")),
        "{}",
        stdout(&o)
    );
    assert_eq!(snapshots_of("us-east-1", &format!("two-{tag}")).len(), 1);

    // status: the destination's archives and the EBS snapshots, the Azure section unreadable.
    let o = policy_run(cmd(), &["status"], &policy);
    assert_code(&o, 1);
    assert!(
        stdout(&o).contains("DESTINATION") && stdout(&o).contains(&vol),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("[[snapshots]] #1 (azure)"),
        "{}",
        stderr(&o)
    );
}
