//! `/openapi.json` says what every route answers; this test probes every documented path
//! of a real server and checks each answer's status is documented for that operation and
//! its error body has the documented shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tessera_testkit::inproc::InProc;
use tessera_testkit::{Client, Resp};

struct Spec {
    doc: Value,
    probed: BTreeSet<String>,
}

impl Spec {
    /// Asserts `res` is documented for `method path` and matches its schema's required fields.
    fn check(&mut self, method: &str, path: &str, res: &Resp) {
        self.probed.insert(path.to_owned());
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let status = res.status.to_string();
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, not documented: {}",
            res.text()
        );
        let Some(content) = documented["content"].as_object() else {
            return;
        };
        let ctype = res.header("content-type").unwrap_or_default();
        let (_, media) = content
            .iter()
            .find(|(k, _)| ctype.starts_with(k.as_str()))
            .unwrap_or_else(|| {
                panic!("{method} {path} {status}: content-type {ctype} not documented")
            });
        if !ctype.starts_with("application/json") {
            return;
        }
        let mut schema = media["schema"].clone();
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.rsplit('/').next().unwrap();
            schema = self.doc["components"]["schemas"][name].clone();
        }
        let body = res.json();
        for field in schema["required"].as_array().cloned().unwrap_or_default() {
            let f = field.as_str().unwrap();
            assert!(
                body.get(f).is_some(),
                "{method} {path} {status}: missing `{f}` in {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_route_answers_as_the_openapi_description_says() {
    let server = InProc::demo().await;
    let mut anon = server.client();
    let res = anon.get("/openapi.json").send().await;
    let doc = res.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut spec = Spec {
        doc,
        probed: BTreeSet::new(),
    };
    spec.check("get", "/openapi.json", &res);

    // Browser flow.
    let mut c: Client = server.client();
    spec.check(
        "post",
        "/auth/login",
        &c.login("demo", "wrong-password").await,
    );
    let res = c
        .post("/auth/login")
        .same_origin()
        .body("text/plain", "{}")
        .send()
        .await;
    spec.check("post", "/auth/login", &res);
    let res = c
        .post("/auth/login")
        .header("origin", "https://evil.example")
        .json(&json!({"username": "demo", "password": "x"}))
        .send()
        .await;
    spec.check("post", "/auth/login", &res);
    spec.check(
        "post",
        "/auth/login",
        &c.login("demo", server.demo_password()).await,
    );
    spec.check("get", "/auth/session", &c.get("/auth/session").send().await);
    spec.check(
        "get",
        "/auth/session",
        &anon.get("/auth/session").send().await,
    );
    spec.check(
        "post",
        "/auth/refresh",
        &c.post("/auth/refresh").with_csrf().send().await,
    );
    spec.check(
        "post",
        "/auth/refresh",
        &anon.post("/auth/refresh").same_origin().send().await,
    );
    // The 200: without a trusted proxy's X-Forwarded-Method the CSRF rules apply.
    spec.check(
        "get",
        "/auth/verify",
        &c.get("/auth/verify").with_csrf().send().await,
    );
    spec.check(
        "get",
        "/auth/verify",
        &anon.get("/auth/verify").send().await,
    );
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "POST")
        .send()
        .await;
    spec.check("get", "/auth/verify", &res);
    spec.check("get", "/{path}", &c.get("/api/notes").send().await);
    spec.check("get", "/{path}", &anon.get("/api/notes").send().await);
    spec.check("get", "/{path}", &anon.get("/api/%2e%2e/x").send().await);
    spec.check(
        "post",
        "/auth/logout",
        &c.post("/auth/logout").with_csrf().send().await,
    );
    spec.check(
        "post",
        "/auth/logout-all",
        &anon.post("/auth/logout-all").same_origin().send().await,
    );
    let mut d = server.client();
    d.login_ok("demo", server.demo_password()).await;
    spec.check(
        "post",
        "/auth/logout-all",
        &d.post("/auth/logout-all").with_csrf().send().await,
    );

    // API clients.
    let form = |body: &str| body.to_owned();
    let pw = server.demo_password().to_owned();
    let res = anon
        .post("/auth/token")
        .body(
            "application/x-www-form-urlencoded",
            form(&format!("grant_type=password&username=demo&password={pw}")),
        )
        .send()
        .await;
    spec.check("post", "/auth/token", &res);
    let refresh = res.json()["refresh_token"].as_str().unwrap().to_owned();
    let res = anon
        .post("/auth/token")
        .body("application/x-www-form-urlencoded", "grant_type=magic")
        .send()
        .await;
    spec.check("post", "/auth/token", &res);
    let res = anon
        .post("/auth/token")
        .body("text/plain", "x")
        .send()
        .await;
    spec.check("post", "/auth/token", &res);
    let res = anon
        .post("/auth/revoke")
        .body(
            "application/x-www-form-urlencoded",
            format!("token={refresh}"),
        )
        .send()
        .await;
    spec.check("post", "/auth/revoke", &res);
    let res = anon
        .post("/auth/revoke")
        .body("application/x-www-form-urlencoded", "")
        .send()
        .await;
    spec.check("post", "/auth/revoke", &res);

    // Operations.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/metrics",
        "/tessera.js",
    ] {
        spec.check("get", path, &anon.get(path).send().await);
    }

    let documented: BTreeSet<String> = spec.doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let missing: Vec<_> = documented.difference(&spec.probed).collect();
    assert!(
        missing.is_empty(),
        "documented but never probed: {missing:?}"
    );
}
