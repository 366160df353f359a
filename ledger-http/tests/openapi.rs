//! The OpenAPI document is committed as `docs/openapi.yaml`, so API changes show in review. This
//! test fails when the code and the file drift apart; regenerate the file with
//! `LEDGER_UPDATE_OPENAPI=1 cargo test -p ledger-http --test openapi`.

use ledger_http::{AppState, Config};

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let mut config = Config::defaults();
    config.database_url = None;
    config.jwt_secret = Some("openapi-test-secret-of-at-least-32-bytes".into());
    let state = AppState::build(config).await.expect("state");
    let generated = ledger_http::openapi(&state).spec_yaml();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    if std::env::var_os("LEDGER_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("writing docs/openapi.yaml");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.yaml is out of date: run `LEDGER_UPDATE_OPENAPI=1 cargo test -p ledger-http --test openapi` \
         and commit the result"
    );
}

#[tokio::test]
async fn every_operation_is_documented() {
    let mut config = Config::defaults();
    config.database_url = None;
    config.jwt_secret = Some("openapi-test-secret-of-at-least-32-bytes".into());
    let state = AppState::build(config).await.expect("state");
    let spec: serde_json::Value = serde_json::from_str(&ledger_http::openapi(&state).spec()).unwrap();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{method} {path}");
            assert!(operation["operationId"].is_string(), "{at} has no operationId");
            assert!(operation["summary"].is_string(), "{at} has no summary");
            let responses = operation["responses"].as_object().unwrap();
            if path.starts_with("/v1/") {
                assert!(
                    responses.contains_key("400") && responses.contains_key("500"),
                    "{at} lacks its error responses"
                );
                let problem = &responses["400"]["content"]["application/problem+json"];
                assert!(problem.is_object(), "{at}: errors are problem+json");
            }
            let public = ["/v1/users", "/v1/auth/login", "/v1/webhooks/deposit"].contains(&path.as_str());
            if path.starts_with("/v1/") && !public {
                assert!(operation["security"].is_array(), "{at} does not declare the bearer scheme");
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations");
    assert_eq!(spec["components"]["securitySchemes"]["BearerAuth"]["scheme"], "bearer");
}
