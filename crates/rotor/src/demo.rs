//! `rotor serve --demo`: seeds a demo app and installation and prints the
//! curl commands that exchange the grant code and refresh the token.

use std::net::SocketAddr;

use rotor_server::service::{NewApp, Service, ServiceError};

const DEMO_APP: &str = "Rotor Demo";

/// Seeds (or refreshes) the demo app and a fresh installation, then prints
/// how to use them.
pub async fn seed_and_print(
    svc: &Service,
    addr: SocketAddr,
    admin_token: Option<&str>,
) -> anyhow::Result<()> {
    let slug = rotor_core::slug::slugify(DEMO_APP);
    let (app, secret) = match svc.app(&slug).await {
        Ok(app) => {
            let secret = svc.rotate_secret(&slug).await?;
            (app, secret)
        }
        Err(ServiceError::NotFound(_)) => {
            let created = svc
                .create_app(NewApp {
                    name: DEMO_APP.into(),
                    scopes: vec!["project:read".into(), "event:read".into()],
                    webhook_url: None,
                    redirect_url: None,
                    verify_install: false,
                    access_token_ttl_seconds: None,
                    refresh_grace_seconds: None,
                    reuse_policy: None,
                })
                .await?;
            (created.app, created.client_secret)
        }
        Err(e) => return Err(e.into()),
    };
    // A fresh organization per run, so the grant code is always new.
    let org = format!(
        "demo-{}",
        &rotor_core::Token::generate(rotor_core::TokenKind::GrantCode).expose()[7..13]
            .to_ascii_lowercase()
    );
    let inst = svc.create_installation(&org, &app.slug, None).await?;
    let base = format!("http://{addr}");
    let id = inst.installation.id;
    let client_id = &app.client_id;
    let secret = secret.expose();
    let code = inst.code.expose();
    println!(
        r#"
Rotor demo is ready on {base}
  app:          {slug} (client id {client_id})
  installation: {id} in organization {org}
  admin token:  {admin}

1. Exchange the grant code (valid 10 minutes, single use) for a token pair:

curl -s -X POST {base}/api/0/sentry-app-installations/{id}/authorizations/ \
  -H 'Content-Type: application/json' \
  -d '{{"grant_type":"authorization_code","client_id":"{client_id}","client_secret":"{secret}","code":"{code}"}}' | tee /tmp/rotor-demo.json

2. Trade the refresh token for a new pair (the old one is retired):

curl -s -X POST {base}/api/0/sentry-app-installations/{id}/authorizations/ \
  -H 'Content-Type: application/json' \
  -d '{{"grant_type":"refresh_token","client_id":"{client_id}","client_secret":"{secret}","refresh_token":"'"$(sed -E 's/.*"refreshToken":"([^"]+)".*/\1/' /tmp/rotor-demo.json)"'"}}'

3. See the events:

curl -s {base}/api/0/events/ -H 'Authorization: Bearer {admin}'
"#,
        admin = admin_token.unwrap_or("(none: set ROTOR_ADMIN_TOKEN)")
    );
    Ok(())
}
