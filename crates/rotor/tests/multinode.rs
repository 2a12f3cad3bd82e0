//! Two `rotor serve` processes on one PostgreSQL: a storm of refreshes of one
//! token spread over both nodes yields one successor (the identical pair for
//! every caller, within the grace window), and a revocation answered by one
//! node is honoured by the next request on the other. Runs when
//! `ROTOR_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used)]

mod support;

use support::{fresh_schema_url, postgres, start, Node, Serve};

use serde_json::{json, Value};

const ADMIN: &str = "multinode-admin";

/// Two `rotor serve` processes on a fresh schema, sharing one server key.
async fn two_nodes() -> [Node; 2] {
    let pg = postgres();
    let url = fresh_schema_url(&pg).await;
    let dir = std::env::temp_dir();
    [
        start(Serve::new(&url, &dir, ADMIN)),
        start(Serve::new(&url, &dir, ADMIN)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_database_with_the_same_guarantees() {
    let nodes = two_nodes().await;
    let http = reqwest::Client::new();

    let (_, app) = nodes[0]
        .admin_post(
            "/api/0/sentry-apps/",
            json!({"name": "Multi", "scopes": ["project:read"]}),
        )
        .await;
    let (_, inst) = nodes[1]
        .admin_post(
            "/api/0/organizations/acme/sentry-app-installations/",
            json!({"slug": "multi"}),
        )
        .await;
    let uuid = inst["uuid"].as_str().unwrap().to_owned();
    let body = |grant: &str, field: &str, value: &str| {
        json!({"client_id": app["clientId"], "client_secret": app["clientSecret"],
               "grant_type": grant, field: value})
    };
    let auth_url = |n: usize| {
        format!(
            "{}/api/0/sentry-app-installations/{uuid}/authorizations/",
            nodes[n].base
        )
    };
    let first: Value = http
        .post(auth_url(0))
        .json(&body(
            "authorization_code",
            "code",
            inst["code"].as_str().unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rt = first["refreshToken"].as_str().unwrap().to_owned();

    // A storm of 60 refreshes of one token, alternating nodes.
    let storm = (0..60).map(|n| {
        let req = http
            .post(auth_url(n % 2))
            .json(&body("refresh_token", "refresh_token", &rt));
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(storm).await;
    for (status, body) in &answers {
        assert_eq!(status.as_u16(), 201, "{body}");
        assert_eq!(
            body, &answers[0].1,
            "one successor, the identical pair everywhere"
        );
    }
    let successor = answers[0].1.clone();

    // Revoke on node 0; the very next request on node 1 honours it.
    let res = http
        .post(format!("{}/oauth/revoke", nodes[0].base))
        .basic_auth(
            app["clientId"].as_str().unwrap(),
            app["clientSecret"].as_str(),
        )
        .form(&[("token", successor["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = http
        .put(format!(
            "{}/api/0/sentry-app-installations/{uuid}/",
            nodes[1].base
        ))
        .bearer_auth(successor["token"].as_str().unwrap())
        .json(&json!({"status": "installed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let intro: Value = http
        .post(format!("{}/oauth/introspect", nodes[1].base))
        .bearer_auth(ADMIN)
        .form(&[("token", successor["refreshToken"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro, json!({"active": false}));
    let res = http
        .post(auth_url(1))
        .json(&body(
            "refresh_token",
            "refresh_token",
            successor["refreshToken"].as_str().unwrap(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_single_flight_holds_across_processes() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let nodes = two_nodes().await;
    let http = reqwest::Client::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "shared", "expires_in": 3600, "refresh_token": "rt-2"}),
                )
                .set_delay(std::time::Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (status, _) = nodes[0]
        .admin_post(
            "/api/0/upstream/providers/",
            json!({"key": "idp", "kind": "oauth2", "config": {
                "tokenUrl": format!("{}/token", server.uri()), "clientId": "c", "clientSecret": "s"}}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, ident) = nodes[1]
        .admin_post(
            "/api/0/upstream/identities/",
            json!({"provider": "idp", "externalId": "u", "refreshToken": "rt-1"}),
        )
        .await;
    let id = ident["id"].as_str().unwrap();
    let calls = (0..30).map(|n| {
        http.post(format!(
            "{}/api/0/upstream/identities/{id}/token/",
            nodes[n % 2].base
        ))
        .bearer_auth(ADMIN)
        .send()
    });
    for res in futures::future::join_all(calls).await {
        let res = res.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let t: Value = res.json().await.unwrap();
        assert_eq!(t["accessToken"], "shared");
    }
    server.verify().await;
}
