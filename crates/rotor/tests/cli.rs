//! The `rotor` binary: migrate, the admin subcommands, and `serve --demo`
//! whose printed curl commands must work as printed.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn rotor(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rotor"));
    c.args(["--output", "json"])
        .current_dir(dir)
        .env_remove("ROTOR_SECRET_KEY")
        .env_remove("ROTOR_ADMIN_TOKEN")
        .env_remove("ROTOR_DATABASE_URL")
        .env("ROTOR_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    c
}

fn json_of(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn admin_subcommands_work_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = rotor(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("rotor.db").exists(),
        "default database in the working directory"
    );

    let app = json_of(
        rotor(dir.path())
            .args([
                "apps",
                "create",
                "--name",
                "CLI App",
                "--scope",
                "project:read",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(app["slug"], "cli-app");
    assert!(app["clientSecret"].as_str().unwrap().starts_with("rtr_cs_"));
    assert!(
        dir.path().join("rotor.db.key").exists(),
        "key file created on first use"
    );

    let list = json_of(rotor(dir.path()).args(["apps", "list"]).output().unwrap());
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("clientSecret").is_none());

    let inst = json_of(
        rotor(dir.path())
            .args(["installs", "create", "--org", "acme", "--app", "cli-app"])
            .output()
            .unwrap(),
    );
    assert!(inst["code"].as_str().unwrap().starts_with("rtr_gc_"));
    let uuid = inst["uuid"].as_str().unwrap();
    let out = rotor(dir.path())
        .args(["installs", "delete", uuid])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = rotor(dir.path())
        .args(["installs", "delete", uuid])
        .output()
        .unwrap();
    assert!(!out.status.success(), "deleting twice is an error");

    let bad = rotor(dir.path())
        .args(["apps", "create", "--name", "X", "--scope", "nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}

#[test]
fn serve_demo_prints_commands_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rotor(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.contains("/api/0/events/");
        lines.push(line);
        if done {
            break;
        }
    }
    // Each command starts with `curl` and continues while a line ends in `\`.
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for l in &lines {
        if let Some(c) = current.as_mut() {
            c.push('\n');
            c.push_str(l);
        } else if l.starts_with("curl ") {
            current = Some(l.clone());
        }
        if !l.ends_with('\\') {
            if let Some(c) = current.take() {
                commands.push(c);
            }
        }
    }
    assert_eq!(commands.len(), 3, "{lines:#?}");
    let run = |cmd: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&commands[0]);
    assert!(
        first["refreshToken"]
            .as_str()
            .unwrap()
            .starts_with("rtr_rt_"),
        "{first}"
    );
    let second = run(&commands[1]);
    assert!(
        second["token"].as_str().unwrap().starts_with("rtr_at_"),
        "{second}"
    );
    assert_ne!(first["refreshToken"], second["refreshToken"]);
    let events = run(&commands[2]);
    assert!(events.as_array().unwrap().len() >= 5, "{events}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn keys_rotate_reseals_everything_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(rotor(dir.path()).arg("migrate").status().unwrap().success());
    json_of(
        rotor(dir.path())
            .args(["apps", "create", "--name", "A", "--scope", "project:read"])
            .output()
            .unwrap(),
    );
    let provider = r#"{"clientId": "c", "clientSecret": "s"}"#;
    json_of(
        rotor(dir.path())
            .args([
                "upstream",
                "providers",
                "add",
                "--key",
                "g",
                "--kind",
                "google",
                "--provider-config",
                provider,
            ])
            .output()
            .unwrap(),
    );
    let ident = json_of(
        rotor(dir.path())
            .args([
                "upstream",
                "identities",
                "add",
                "--provider",
                "g",
                "--external-id",
                "u",
                "--refresh-token",
                "rt",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(ident["status"], "active");
    let listed = json_of(
        rotor(dir.path())
            .args(["upstream", "identities", "list"])
            .output()
            .unwrap(),
    );
    assert!(
        !listed.to_string().contains("\"rt\""),
        "no secret is printed"
    );
    let old = std::fs::read_to_string(dir.path().join("rotor.db.key")).unwrap();
    let new = String::from_utf8(
        rotor(dir.path())
            .args(["keys", "generate"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let rotate = |old_keys: Option<&str>| {
        let mut c = rotor(dir.path());
        c.args(["keys", "rotate"])
            .env("ROTOR_SECRET_KEY", new.trim());
        if let Some(o) = old_keys {
            c.env("ROTOR_SECRET_KEYS_OLD", o.trim());
        }
        json_of(c.output().unwrap())
    };
    let first = rotate(Some(&old));
    assert_eq!(
        (
            first["apps"].as_i64(),
            first["providers"].as_i64(),
            first["identities"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{first}"
    );
    // Now the new key alone opens everything: nothing left to re-seal.
    let second = rotate(None);
    assert_eq!(
        (second["apps"].as_i64(), second["skipped"].as_i64()),
        (Some(0), Some(0)),
        "{second}"
    );
    // `keys check` shows everything under the new key, nothing under the old.
    let check = json_of(
        rotor(dir.path())
            .args(["keys", "check"])
            .env("ROTOR_SECRET_KEY", new.trim())
            .output()
            .unwrap(),
    );
    let keys = check["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{check}");
    assert_eq!(keys[0]["keyId"], check["primaryKeyId"]);
    assert_eq!(keys[0]["primary"], true);
    assert!(keys[0]["values"].as_u64().unwrap() >= 3, "{check}");
}

#[test]
fn a_lost_key_is_refused_by_name_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    assert!(rotor(dir.path()).arg("migrate").status().unwrap().success());
    let created = json_of(
        rotor(dir.path())
            .args([
                "apps",
                "create",
                "--name",
                "Keyed",
                "--scope",
                "project:read",
            ])
            .output()
            .unwrap(),
    );
    assert!(created["clientSecret"].as_str().is_some());
    let key_file = dir.path().join("rotor.db.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();

    // Without its key file the database is refused, and no new key is made.
    let out = rotor(dir.path()).args(["apps", "list"]).output().unwrap();
    assert!(!out.status.success(), "a lost key must not be papered over");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rotor.db.key is missing"), "{err}");
    assert!(
        !key_file.exists(),
        "a new key file was created over sealed data"
    );
    // The wrong key is refused too, naming the key id it lacks.
    let other = rotor(dir.path())
        .args(["apps", "list"])
        .env(
            "ROTOR_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("sealed under key id(s)") && err.contains("ROTOR_SECRET_KEYS_OLD"),
        "{err}"
    );
    // With the key back, everything works.
    std::fs::write(&key_file, key).unwrap();
    let out = rotor(dir.path()).args(["apps", "list"]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn only_serve_and_migrate_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["apps", "list"][..],
        &["installs", "delete", "x"],
        &["upstream", "providers", "list"],
    ] {
        let out = rotor(dir.path()).args(args).output().unwrap();
        assert!(
            !out.status.success(),
            "{args:?} succeeded without a database"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let abs = dir.path().join("rotor.db");
        assert!(
            err.contains(&format!("no Rotor database at {}", abs.display())),
            "{args:?}: {err}"
        );
        assert!(err.contains("rotor migrate"), "{err}");
    }
    assert!(
        !dir.path().join("rotor.db").exists(),
        "an empty database was created"
    );
    assert!(
        !dir.path().join("rotor.db.key").exists(),
        "a key file was created"
    );
    assert!(rotor(dir.path()).arg("migrate").status().unwrap().success());
    assert!(rotor(dir.path())
        .args(["apps", "list"])
        .status()
        .unwrap()
        .success());
}

#[test]
fn keys_rotate_writes_a_new_key_into_the_key_file_and_retire_drops_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("rotor.db.key");
    assert!(rotor(dir.path()).arg("migrate").status().unwrap().success());
    json_of(
        rotor(dir.path())
            .args(["apps", "create", "--name", "A", "--scope", "project:read"])
            .output()
            .unwrap(),
    );
    let keys_in_file = || -> Vec<String> {
        std::fs::read_to_string(&key_file)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    };
    let before = keys_in_file();
    assert_eq!(before.len(), 1);

    let rotated = rotor(dir.path()).args(["keys", "rotate"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&rotated.stderr).to_string();
    let out = json_of(rotated);
    assert_eq!(out["apps"], 1, "{out}");
    assert!(stderr.contains("restart every `rotor serve`"), "{stderr}");
    let after = keys_in_file();
    assert_eq!(after.len(), 2, "new primary first, the old one kept");
    assert_eq!(after[1], before[0]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let check = json_of(rotor(dir.path()).args(["keys", "check"]).output().unwrap());
    let keys = check["keys"].as_array().unwrap();
    let primary = keys.iter().find(|k| k["primary"] == true).unwrap();
    assert!(primary["values"].as_u64().unwrap() >= 1, "{check}");
    let old = keys.iter().find(|k| k["primary"] == false).unwrap();
    assert_eq!(old["values"], 0, "{check}");

    let retired = json_of(rotor(dir.path()).args(["keys", "retire"]).output().unwrap());
    assert_eq!(retired["retired"].as_array().unwrap().len(), 1, "{retired}");
    assert_eq!(keys_in_file(), vec![after[0].clone()]);
    // The database still opens with the one key left.
    json_of(rotor(dir.path()).args(["apps", "list"]).output().unwrap());
}

#[test]
fn keys_retire_refuses_while_values_are_sealed_under_an_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = |d: &std::path::Path| {
        String::from_utf8(rotor(d).args(["keys", "generate"]).output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let (a, b) = (key(dir.path()), key(dir.path()));
    let with = |c: &mut Command, primary: &str| {
        c.env("ROTOR_SECRET_KEY", primary);
    };
    let mut m = rotor(dir.path());
    with(&mut m, &a);
    assert!(m.arg("migrate").status().unwrap().success());
    let mut create = rotor(dir.path());
    with(&mut create, &a);
    json_of(
        create
            .args(["apps", "create", "--name", "A", "--scope", "project:read"])
            .output()
            .unwrap(),
    );
    let mut retire = rotor(dir.path());
    with(&mut retire, &b);
    let out = retire
        .env("ROTOR_SECRET_KEYS_OLD", &a)
        .args(["keys", "retire"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not retiring"), "{err}");
}

#[test]
fn config_show_layers_flag_over_environment_over_file_over_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rotor.toml");
    std::fs::write(
        &file,
        "webhook_timeout_seconds = 7\ndrain_seconds = 5\nlisten = \"127.0.0.1:8181\"\n\
         admin_token = \"file-token-that-must-not-print\"\n",
    )
    .unwrap();
    let out = rotor(dir.path())
        .env("ROTOR_CONFIG", &file)
        .env("ROTOR_DRAIN_SECONDS", "6")
        .env("ROTOR_LISTEN", "127.0.0.1:8282")
        .args(["config", "show", "--listen", "127.0.0.1:8383"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing in:\n{shown}"))
            .to_owned()
    };
    assert!(
        line("listen").contains("\"127.0.0.1:8383\"  # flag --listen"),
        "{shown}"
    );
    assert!(
        line("drain_seconds").contains("6  # environment ROTOR_DRAIN_SECONDS"),
        "{shown}"
    );
    assert!(
        line("webhook_timeout_seconds").contains("7  # file "),
        "{shown}"
    );
    assert!(
        line("request_timeout_seconds").contains("30  # default"),
        "{shown}"
    );
    assert!(line("admin_token").contains("[redacted]"), "{shown}");
    assert!(!shown.contains("must-not-print"), "{shown}");

    // An unknown key names itself; a bad value names the setting and layer.
    std::fs::write(&file, "webhok_timeout_seconds = 7\n").unwrap();
    let out = rotor(dir.path())
        .args(["--config", file.to_str().unwrap(), "config", "show"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown setting `webhok_timeout_seconds`")
    );
    let out = rotor(dir.path())
        .env("ROTOR_WEBHOOK_TIMEOUT_SECONDS", "soon")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("webhook_timeout_seconds") && err.contains("ROTOR_WEBHOOK_TIMEOUT_SECONDS"),
        "{err}"
    );
    let out = rotor(dir.path())
        .args(["config", "show", "--management-listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--management-listen"));
}

#[test]
fn the_cli_covers_the_admin_surface() {
    let dir = tempfile::tempdir().unwrap();
    assert!(rotor(dir.path()).arg("migrate").status().unwrap().success());
    let run = |args: &[&str]| json_of(rotor(dir.path()).args(args).output().unwrap());
    let app = run(&["apps", "create", "--name", "Ops", "--scope", "project:read"]);
    let first_secret = app["clientSecret"].as_str().unwrap().to_owned();
    assert_eq!(run(&["apps", "show", "ops"])["slug"], "ops");
    let updated = run(&[
        "apps",
        "update",
        "ops",
        "--name",
        "Ops Two",
        "--scope",
        "project:read",
        "--scope",
        "org:read",
        "--refresh-grace-seconds",
        "5",
    ]);
    assert_eq!(updated["name"], "Ops Two");
    assert_eq!(
        updated["scopes"],
        serde_json::json!(["org:read", "project:read"])
    );
    assert_eq!(updated["refreshGraceSeconds"], 5);
    let rotated = run(&["apps", "rotate-secret", "ops"]);
    assert_ne!(rotated["clientSecret"].as_str().unwrap(), first_secret);

    let a = run(&["installs", "create", "--org", "acme", "--app", "ops"]);
    run(&["installs", "create", "--org", "beta", "--app", "ops"]);
    let uuid = a["uuid"].as_str().unwrap();
    assert_eq!(
        run(&["installs", "show", uuid])["organization"]["slug"],
        "acme"
    );
    assert_eq!(
        run(&["installs", "list", "--app", "ops"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        run(&["installs", "list", "--org", "beta"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = rotor(dir.path())
        .args(["installs", "delete", "not-a-uuid"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a UUID"));

    let events = run(&["events", "--type", "installation_created", "--limit", "1"]);
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["type"], "installation_created");

    // A table by default.
    let table = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .args(["installs", "list", "--app", "ops"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("UUID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    let unknown = rotor(dir.path())
        .args(["tokens", "revoke", "rtr_rt_nothing"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());

    let refused = rotor(dir.path())
        .args(["apps", "delete", "ops"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("force"));
    let forced = rotor(dir.path())
        .args(["apps", "delete", "ops", "--force"])
        .output()
        .unwrap();
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(run(&["apps", "list"]), serde_json::json!([]));
}
