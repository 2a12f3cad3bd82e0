//! The operator's surface: deleting an app, listing installations by
//! organization and by app, cursor pagination with Sentry's `Link` header on
//! every list, and filters that are honoured or refused, never ignored.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// GET with the admin token; answers status, `Link` header and body.
async fn get_paged(app: &TestApp, path: &str) -> (StatusCode, Option<String>, Value) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let link = res
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = split(res).await;
    (status, link, body)
}

/// Follows `Link: rel="next"` from `path` until `results="false"`; answers
/// every item and how many pages it took.
async fn walk(app: &TestApp, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut next = Some(path.to_owned());
    let mut pages = 0;
    while let Some(p) = next.take() {
        let (status, link, body) = get_paged(app, &p).await;
        assert_eq!(status, StatusCode::OK, "{p}: {body}");
        pages += 1;
        items.extend(body.as_array().unwrap().iter().cloned());
        let link = link.expect("every list answers a Link header");
        assert!(link.contains("rel=\"next\""), "{link}");
        if link.contains("results=\"true\"") {
            let url = link.split('<').nth(1).unwrap().split('>').next().unwrap();
            next = Some(url.to_owned());
        } else {
            assert!(link.contains("results=\"false\"; cursor=\"\""), "{link}");
        }
        assert!(pages < 50, "pagination does not end");
    }
    (items, pages)
}

http_tests! {
    async fn an_app_with_live_installations_is_deleted_only_with_force() {
        let app = spawn_app().await;
        let a = app.create_app("Doomed", json!({})).await;
        let i = app.install_app(&a, "acme").await;
        let tokens = app.tokens(&i).await;
        let path = "/api/0/sentry-apps/doomed/";
        let res = app.http.delete(app.url(path)).bearer_auth(ADMIN).send().await.unwrap();
        let (status, body) = split(res).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("force=true"), "{body}");
        // Refused: nothing changed.
        assert_eq!(app.refresh(&i, tokens["refreshToken"].as_str().unwrap()).await.0, StatusCode::CREATED);

        let res = app.http.delete(app.url("/api/0/sentry-apps/doomed/?force=maybe"))
            .bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(app.admin_delete("/api/0/sentry-apps/doomed/?force=true").await, StatusCode::NO_CONTENT);
        assert_eq!(app.admin_get(path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.admin_get(&format!("/api/0/sentry-app-installations/{}/", i.uuid)).await.0, StatusCode::NOT_FOUND);
        // Its client can no longer authenticate; the slug is free again.
        let (status, _) = app.refresh(&i, tokens["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.admin_delete(path).await, StatusCode::NOT_FOUND);
        app.create_app("Doomed", json!({})).await;
        // An app without installations goes without force.
        let b = app.create_app("Bare", json!({})).await;
        assert_eq!(app.admin_delete(&format!("/api/0/sentry-apps/{}/", b["slug"].as_str().unwrap())).await, StatusCode::NO_CONTENT);
    }

    async fn installations_are_listed_by_organization_and_by_app_a_page_at_a_time() {
        let app = spawn_app().await;
        let a = app.create_app("Lister", json!({})).await;
        let b = app.create_app("Other", json!({})).await;
        let mut mine = Vec::new();
        for n in 0..5 {
            mine.push(app.install_app(&a, &format!("org-{n}")).await.uuid);
            // The test clock is manual: let each installation be newer.
            app.advance(chrono::Duration::seconds(1));
        }
        app.install_app(&b, "org-0").await;
        let gone = app.install_app(&b, "org-1").await;
        assert_eq!(app.admin_delete(&format!("/api/0/sentry-app-installations/{}/", gone.uuid)).await, StatusCode::NO_CONTENT);

        let (items, pages) = walk(&app, "/api/0/sentry-apps/lister/installations/?per_page=2").await;
        assert_eq!(pages, 3);
        let created: Vec<&str> = items.iter().map(|i| i["dateCreated"].as_str().unwrap()).collect();
        assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first: {created:?}");
        assert_eq!(items[0]["organization"]["slug"], "org-4", "the newest first");
        let mut got: Vec<String> = items.iter().map(|i| i["uuid"].as_str().unwrap().to_owned()).collect();
        got.sort();
        mine.sort();
        assert_eq!(got, mine, "each live installation exactly once");

        let (items, _) = walk(&app, "/api/0/organizations/org-0/sentry-app-installations/").await;
        let apps: Vec<&str> = items.iter().map(|i| i["app"]["slug"].as_str().unwrap()).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(apps.contains(&"lister") && apps.contains(&"other"));
        let (items, _) = walk(&app, "/api/0/organizations/org-1/sentry-app-installations/").await;
        assert_eq!(items.len(), 1, "a deleted installation is not listed");

        for bad in [
            "/api/0/sentry-apps/lister/installations/?cursor=not-a-cursor",
            "/api/0/sentry-apps/lister/installations/?limit=0",
            "/api/0/sentry-apps/lister/installations/?status=installed",
            "/api/0/organizations/org-0/sentry-app-installations/?app=lister",
        ] {
            let (status, body) = app.admin_get(bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        assert_eq!(app.admin_get("/api/0/sentry-apps/nope/installations/").await.0, StatusCode::NOT_FOUND);
    }

    async fn every_list_pages_with_a_link_header_and_refuses_unknown_filters() {
        let app = spawn_app().await;
        for n in 0..5 {
            let a = app.create_app(&format!("Paged {n}"), json!({})).await;
            app.install_app(&a, "acme").await;
        }
        let (apps, pages) = walk(&app, "/api/0/sentry-apps/?limit=2").await;
        assert_eq!((apps.len(), pages), (5, 3));
        // Events: newest first, filters kept across pages.
        let (all, _) = walk(&app, "/api/0/events/?type=installation_created&limit=2").await;
        assert_eq!(all.len(), 5);
        let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
        assert!(all.iter().all(|e| e["type"] == "installation_created"));
        for bad in [
            "/api/0/sentry-apps/?sort=name",
            "/api/0/events/?kind=x",
            "/api/0/events/?type=token.exchanged",
            "/api/0/events/?cursor=abc",
            "/api/0/upstream/identities/?status=bogus",
            "/api/0/upstream/identities/?owner=me",
            "/api/0/upstream/providers/?limit=5000",
        ] {
            let (status, body) = app.admin_get(bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        // The status filter is applied, not ignored: one active identity.
        let (status, _) = app.admin_post("/api/0/upstream/providers/",
            json!({"key": "g", "kind": "google", "config": {"clientId": "c", "clientSecret": "s"}})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = app.admin_post("/api/0/upstream/identities/",
            json!({"provider": "g", "externalId": "x", "refreshToken": "r"})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _, body) = get_paged(&app, "/api/0/upstream/identities/?status=active").await;
        assert_eq!((status, body.as_array().unwrap().len()), (StatusCode::OK, 1));
        let (status, _, body) = get_paged(&app, "/api/0/upstream/identities/?status=invalid").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([]));
        // Identities page in the store, in id order, the filter kept.
        for n in 0..4 {
            let (status, _) = app.admin_post("/api/0/upstream/identities/",
                json!({"provider": "g", "externalId": format!("x{n}"), "refreshToken": "r"})).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (ids, pages) = walk(&app, "/api/0/upstream/identities/?provider=g&status=active&per_page=2").await;
        assert_eq!((ids.len(), pages), (5, 3));
        let ids: Vec<&str> = ids.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // The delivery log pages too, newest first.
        let hooked = app.create_app("Hooked", json!({"webhookUrl": "https://hooks.example/rotor"})).await;
        for org in ["o1", "o2", "o3"] {
            app.install_app(&hooked, org).await;
        }
        let (deliveries, pages) = walk(&app, "/api/0/sentry-apps/hooked/webhook-requests/?per_page=2").await;
        assert_eq!((deliveries.len(), pages), (3, 2));
        let orgs: Vec<&str> = deliveries.iter().map(|d| d["organization"]["slug"].as_str().unwrap()).collect();
        assert_eq!(orgs, ["o3", "o2", "o1"]);
    }

    async fn a_malformed_id_is_a_400_that_says_so_and_an_unknown_one_a_404() {
        let app = spawn_app().await;
        let (status, body) = app.admin_get("/api/0/sentry-app-installations/not-a-uuid/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.to_string().contains("UUID"), "{body}");
        assert_eq!(app.admin_delete("/api/0/sentry-app-installations/not-a-uuid/").await, StatusCode::BAD_REQUEST);
        let unknown = uuid::Uuid::new_v4();
        assert_eq!(app.admin_get(&format!("/api/0/sentry-app-installations/{unknown}/")).await.0, StatusCode::NOT_FOUND);
        let (status, _) = app.admin_get("/api/0/upstream/identities/nope/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    async fn the_client_ip_comes_from_forwarding_headers_only_behind_a_trusted_proxy() {
        // The audit record of an exchange carries the client IP.
        async fn audited_ip(app: &TestApp) -> String {
            let i = app.installed("Proxied", "acme").await;
            let res = app
                .http
                .post(app.url(&format!("/api/0/sentry-app-installations/{}/authorizations/", i.uuid)))
                .header("x-forwarded-for", "198.51.100.9, 203.0.113.7")
                .json(&json!({"client_id": i.client_id, "client_secret": i.client_secret,
                    "grant_type": "authorization_code", "code": i.code}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            let (_, events) = app.admin_get("/api/0/events/?type=token_exchange_audit").await;
            events[0]["ip"].as_str().unwrap().to_owned()
        }
        let untrusting = spawn_app().await;
        assert_eq!(audited_ip(&untrusting).await, "127.0.0.1", "headers from an untrusted peer are ignored");
        let behind_proxy = spawn_with(fresh().await, |c| {
            c.trusted_proxies = rotor_server::http::client_ip::TrustedProxies::parse("127.0.0.0/8").unwrap();
        })
        .await;
        assert_eq!(audited_ip(&behind_proxy).await, "203.0.113.7", "the nearest untrusted hop");
    }

    async fn the_operator_revokes_a_token_family() {
        let app = spawn_app().await;
        let i = app.installed("Revoked", "acme").await;
        let t = app.tokens(&i).await;
        let (status, body) = app
            .admin_post("/api/0/tokens/revoke/", json!({"token": t["token"]}))
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"revoked": true})));
        let (status, _) = app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the whole family is revoked");
        let (status, body) = app
            .admin_post("/api/0/tokens/revoke/", json!({"token": "rtr_at_unknown"}))
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"revoked": false})));
        let (status, _) = app.admin_post("/api/0/tokens/revoke/", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
