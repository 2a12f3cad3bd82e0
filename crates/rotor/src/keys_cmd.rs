//! `rotor keys …`: generate, rotate, check and retire the server keys that
//! seal secrets at rest.

use clap::Subcommand;
use rotor_core::ServerKey;
use rotor_server::keyfile;
use rotor_server::startup::{self, Config};

use crate::print;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a new random server key (standard base64 of 32 bytes).
    Generate,
    /// With a key file: write a new primary key into it (atomically, the
    /// old one kept) and re-seal every secret at rest under it. With
    /// ROTOR_SECRET_KEY: re-seal under that key, opening old values with
    /// ROTOR_SECRET_KEYS_OLD. Exits non-zero when anything was skipped.
    Rotate,
    /// Show which server key sealed how many stored values.
    Check,
    /// Drop older keys nothing is sealed under any more (from the key file;
    /// with configured keys, say whether ROTOR_SECRET_KEYS_OLD can go).
    Retire,
}

pub async fn run(cfg: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate => println!("{}", ServerKey::generate().to_base64()),
        KeysCommand::Rotate => rotate(cfg).await?,
        KeysCommand::Retire => retire(cfg).await?,
        KeysCommand::Check => {
            let state = startup::build_default(cfg).await?;
            print(&state.service.key_status().await?);
        }
    }
    Ok(())
}

/// `rotor keys rotate`. With a key file: a new primary key is written into
/// it first (atomically, the old keys kept), then every value is re-sealed
/// under it. With configured keys: re-seals under ROTOR_SECRET_KEY.
async fn rotate(cfg: &Config) -> anyhow::Result<()> {
    let key_file = startup::key_file(cfg);
    if let Some(path) = &key_file {
        // Open the database with the current keys first: this refuses a
        // database whose data the key file cannot open, before touching it.
        let state = startup::build_default(cfg).await?;
        state.service.close().await;
        let old = keyfile::read_key_file(path)?;
        let new = ServerKey::generate();
        let mut keys = vec![new];
        keys.extend(old);
        keyfile::write_key_file(path, &keys)?;
        eprintln!(
            "wrote a new primary key {} into {} (older keys kept)",
            keys[0].id(),
            path.display()
        );
    }
    let state = startup::build_default(cfg).await?;
    let svc = &state.service;
    let r = svc.reseal_all().await?;
    let primary = svc.primary_key_id().to_owned();
    print(
        &json!({"keyId": primary, "apps": r.apps, "providers": r.providers,
                  "identities": r.identities, "skipped": r.skipped}),
    );
    match &key_file {
        Some(path) => eprintln!(
            "next: restart every `rotor serve` on this database now (a running server does not              have key {primary}, and would fail the exchanges of apps sealed under it); back up              {}; once `rotor keys check` shows no values under an older key (pending webhooks              are delivered under the key they were queued with), run `rotor keys retire`",
            path.display()
        ),
        None => eprintln!(
            "next: every node must have ROTOR_SECRET_KEY = the key {primary} and the old key in              ROTOR_SECRET_KEYS_OLD; restart them; once `rotor keys check` shows no values under              an older key, remove it from ROTOR_SECRET_KEYS_OLD (`rotor keys retire` checks)"
        ),
    }
    if r.skipped > 0 {
        anyhow::bail!(
            "{} value(s) were skipped (changed while rotating, or sealed under a key not in \
             the keyring): run `rotor keys rotate` again, and keep the old key until \
             `rotor keys check` shows nothing under it",
            r.skipped
        );
    }
    Ok(())
}

/// `rotor keys retire`: drops older keys that nothing is sealed under any
/// more; refuses while something still is.
async fn retire(cfg: &Config) -> anyhow::Result<()> {
    let state = startup::build_default(cfg).await?;
    let status = state.service.key_status().await?;
    let primary = status.primary_key_id.clone();
    let still: Vec<String> = status
        .still_in_use()
        .map(|k| format!("{} ({} value(s))", k.key_id, k.values))
        .collect();
    if !still.is_empty() {
        anyhow::bail!(
            "not retiring: values are still sealed under {}; run `rotor keys rotate` (and let \
             pending webhooks be delivered), then `rotor keys retire` again",
            still.join(", ")
        );
    }
    let retired: Vec<String> = status.older_keys().map(|k| k.key_id.clone()).collect();
    match startup::key_file(cfg) {
        Some(path) => {
            let keys = keyfile::read_key_file(&path)?;
            keyfile::write_key_file(&path, &keys[..1])?;
            eprintln!(
                "{} now holds only key {primary}; retired: {}",
                path.display(),
                if retired.is_empty() {
                    "none".into()
                } else {
                    retired.join(", ")
                }
            );
        }
        None => {
            eprintln!(
            "nothing is sealed under an older key: remove ROTOR_SECRET_KEYS_OLD ({}) on every node",
            if retired.is_empty() { "already empty".into() } else { retired.join(", ") }
        )
        }
    }
    print(&json!({"primaryKeyId": primary, "retired": retired}));
    Ok(())
}
