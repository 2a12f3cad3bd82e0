//! The standard OAuth 2.0 routes, driven by a real third-party client (the
//! `oauth2` crate) and by hand for every RFC 6749 §5.2 error shape, RFC 7009
//! revocation, RFC 7662 introspection and RFC 8414 metadata.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, RefreshToken, RequestTokenError,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::json;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

http_tests! {
    async fn the_oauth2_crate_exchanges_a_code_and_refreshes() {
        let app = spawn_app().await;
        for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
            let i = app.installed(&format!("App {auth:?}"), "acme").await;
            let client = BasicClient::new(ClientId::new(i.client_id.clone()))
                .set_client_secret(ClientSecret::new(i.client_secret.clone()))
                .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
                .set_auth_type(auth.clone());
            let first = client
                .exchange_code(AuthorizationCode::new(i.code.clone()))
                .request_async(&http())
                .await
                .unwrap();
            assert!(first.access_token().secret().starts_with("rtr_at_"));
            assert_eq!(first.expires_in().unwrap().as_secs(), 8 * 3600);
            let scopes: Vec<_> = first
                .scopes()
                .unwrap()
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(scopes, vec!["event:write", "project:read"]);
            let rt = first.refresh_token().unwrap();
            let second = client
                .exchange_refresh_token(rt)
                .request_async(&http())
                .await
                .unwrap();
            assert_ne!(
                second.access_token().secret(),
                first.access_token().secret()
            );
            // The issued token is an installation token on the Sentry routes too.
            assert_eq!(
                app.verify(&i.uuid, second.access_token().secret()).await.0,
                StatusCode::OK
            );
            // A reused code is invalid_grant, as the client library understands it.
            let err = client
                .exchange_code(AuthorizationCode::new(i.code.clone()))
                .request_async(&http())
                .await
                .unwrap_err();
            match err {
                RequestTokenError::ServerResponse(e) => {
                    assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
                }
                other => panic!("expected invalid_grant, got {other:?}"),
            }
            let err = client
                .exchange_refresh_token(&RefreshToken::new("rtr_rt_nonsense".into()))
                .request_async(&http())
                .await
                .unwrap_err();
            assert!(
                matches!(err, RequestTokenError::ServerResponse(ref e) if *e.error() == BasicErrorResponseType::InvalidGrant)
            );
        }
    }

    async fn token_answers_are_not_cached_and_errors_have_the_rfc_shape() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let basic = Some((i.client_id.as_str(), i.client_secret.as_str()));

        let (status, headers, body) = app
            .form(
                "/oauth/token",
                basic,
                &[("grant_type", "authorization_code"), ("code", &i.code)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "event:write project:read");
        let rt = body["refresh_token"].as_str().unwrap().to_owned();

        type Case<'a> = (
            Option<(&'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
            StatusCode,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                basic,
                vec![("grant_type", "password")],
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
            ),
            (basic, vec![], StatusCode::BAD_REQUEST, "invalid_request"),
            (
                basic,
                vec![("grant_type", "authorization_code")],
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                basic,
                vec![("grant_type", "refresh_token")],
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                basic,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "rtr_rt_x"),
                ],
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            ),
            (
                basic,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("scope", "org:admin"),
                ],
                StatusCode::BAD_REQUEST,
                "invalid_scope",
            ),
            (
                None,
                vec![("grant_type", "refresh_token"), ("refresh_token", &rt)],
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                Some((&i.client_id, "wrong")),
                vec![("grant_type", "refresh_token"), ("refresh_token", &rt)],
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                None,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", &i.client_id),
                    ("client_secret", "wrong"),
                ],
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                basic,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", &i.client_id),
                    ("client_secret", &i.client_secret),
                ],
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                basic,
                vec![
                    ("grant_type", "refresh_token"),
                    ("grant_type", "refresh_token"),
                ],
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
        ];
        for (auth, fields, want_status, want_error) in cases {
            let (status, headers, body) = app.form("/oauth/token", auth, &fields).await;
            assert_eq!(
                (status, body["error"].as_str().unwrap()),
                (want_status, want_error),
                "{fields:?}: {body}"
            );
            assert!(body["error_description"].is_string());
            assert_eq!(headers["cache-control"], "no-store");
            let challenged = headers.contains_key("www-authenticate");
            assert_eq!(
                challenged,
                want_error == "invalid_client" && auth.is_some(),
                "{fields:?}"
            );
        }
        // JSON instead of a form.
        let res = app
            .http
            .post(app.url("/oauth/token"))
            .json(&json!({"grant_type": "refresh_token"}))
            .send()
            .await
            .unwrap();
        let (status, body) = split(res).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_request"))
        );
        // None of that spent the refresh token.
        let (status, _, _) = app
            .form(
                "/oauth/token",
                basic,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn client_secret_jwt_authenticates_at_the_token_endpoint() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let claims = |jti: &str, aud: &str| json!({"iss": i.client_id, "sub": i.client_id, "aud": aud, "exp": app.epoch() + 120, "jti": jti});
        let assertion = hs256(&i.client_secret, &claims("j1", &app.url("/oauth/token")));
        let jwt_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
        let (status, _, body) = app
            .form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &i.code),
                    ("client_assertion_type", jwt_type),
                    ("client_assertion", &assertion),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rt = body["refresh_token"].as_str().unwrap();
        // The same assertion again: its jti is spent.
        let (status, _, body) = app
            .form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt),
                    ("client_assertion_type", jwt_type),
                    ("client_assertion", &assertion),
                ],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        // Wrong audience.
        let wrong = hs256(
            &i.client_secret,
            &claims("j2", "https://elsewhere.test/token"),
        );
        let (status, _, _) = app
            .form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt),
                    ("client_assertion_type", jwt_type),
                    ("client_assertion", &wrong),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The issuer as audience is accepted too.
        let by_issuer = hs256(&i.client_secret, &claims("j3", &app.base));
        let (status, _, body) = app
            .form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt),
                    ("client_assertion_type", jwt_type),
                    ("client_assertion", &by_issuer),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn revoking_either_token_ends_the_family() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let other = app.installed("Other", "acme").await;
        let basic = Some((i.client_id.as_str(), i.client_secret.as_str()));
        let t = app.tokens(&i).await;
        let (_, t2) = app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
        let to = app.tokens(&other).await;

        // Unknown and malformed tokens: 200, nothing happens.
        for token in ["rtr_at_unknown", "whatever"] {
            assert_eq!(
                app.form("/oauth/revoke", basic, &[("token", token)])
                    .await
                    .0,
                StatusCode::OK
            );
        }
        // Another app's token: 200, not revoked.
        assert_eq!(
            app.form(
                "/oauth/revoke",
                basic,
                &[("token", to["token"].as_str().unwrap())]
            )
            .await
            .0,
            StatusCode::OK
        );
        assert_eq!(
            app.introspect(to["token"].as_str().unwrap()).await["active"],
            true
        );
        // Missing token, bad client.
        let (status, _, body) = app.form("/oauth/revoke", basic, &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request"))
        );
        let (status, _, body) = app
            .form(
                "/oauth/revoke",
                Some((&i.client_id, "nope")),
                &[("token", "x")],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );

        // Revoking the current access token ends the pair and its refresh token.
        let (status, _, _) = app
            .form(
                "/oauth/revoke",
                basic,
                &[
                    ("token", t2["token"].as_str().unwrap()),
                    ("token_type_hint", "access_token"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            app.verify(&i.uuid, t2["token"].as_str().unwrap()).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = app.refresh(&i, t2["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (_, ev) = app.admin_get("/api/0/events/?type=token_revoked").await;
        assert_eq!(ev.as_array().unwrap().len(), 1);
    }

    async fn introspection_answers_the_operator_and_the_owning_app_only() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let other = app.installed("Other", "acme").await;
        let t = app.tokens(&i).await;
        let access = t["token"].as_str().unwrap();

        let got = app.introspect(access).await;
        assert_eq!(got["active"], true);
        assert_eq!(got["client_id"], i.client_id.as_str());
        assert_eq!(got["sub"], i.uuid.as_str());
        assert_eq!(got["scope"], "event:write project:read");
        assert_eq!(got["token_type"], "Bearer");
        assert_eq!(
            got["exp"].as_i64().unwrap() - got["iat"].as_i64().unwrap(),
            8 * 3600
        );
        let refresh = app.introspect(t["refreshToken"].as_str().unwrap()).await;
        assert_eq!(
            (refresh["active"].as_bool(), refresh["token_type"].as_str()),
            (Some(true), Some("refresh_token"))
        );

        let own = app
            .form(
                "/oauth/introspect",
                Some((&i.client_id, &i.client_secret)),
                &[("token", access)],
            )
            .await;
        assert_eq!(own.2["active"], true);
        let foreign = app
            .form(
                "/oauth/introspect",
                Some((&other.client_id, &other.client_secret)),
                &[("token", access)],
            )
            .await;
        assert_eq!(foreign.2, json!({"active": false}));
        for junk in ["", "rtr_at_nope", "rtr_gc_nope"] {
            let r = app
                .form(
                    "/oauth/introspect",
                    Some((&i.client_id, &i.client_secret)),
                    &[("token", junk)],
                )
                .await;
            if junk.is_empty() {
                assert_eq!(r.0, StatusCode::BAD_REQUEST, "a missing token is invalid_request");
                assert_eq!(r.2["error"], "invalid_request");
            } else {
                assert_eq!((r.0, &r.2), (StatusCode::OK, &json!({"active": false})), "{junk}");
            }
        }
        let anon = app
            .form("/oauth/introspect", None, &[("token", access)])
            .await;
        assert_eq!(anon.0, StatusCode::UNAUTHORIZED);
        let res = app
            .http
            .post(app.url("/oauth/introspect"))
            .bearer_auth("wrong")
            .form(&[("token", access)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        app.advance(chrono::Duration::hours(8));
        assert_eq!(
            app.introspect(access).await,
            json!({"active": false}),
            "expired"
        );
    }

    async fn metadata_describes_the_endpoints() {
        let app = spawn_app().await;
        let (status, m) = split(
            app.http
                .get(app.url("/.well-known/oauth-authorization-server"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(m["issuer"], app.base.as_str());
        assert_eq!(m["token_endpoint"], app.url("/oauth/token"));
        assert_eq!(m["revocation_endpoint"], app.url("/oauth/revoke"));
        assert_eq!(m["introspection_endpoint"], app.url("/oauth/introspect"));
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "client_secret_jwt"
            ])
        );
        assert!(m["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("project:read")));
    }
}
