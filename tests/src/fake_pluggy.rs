//! A fake Pluggy API on loopback that behaves as Pluggy documents: `POST /auth` gives
//! a JWT with an `exp`, every call needs a live key (401 otherwise), lists are paginated
//! (accounts two per page, v2 transactions three per page with a `next` cursor), and a
//! test can make the next call answer 429 with `Retry-After` or 5xx.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// What the fake serves, and what it saw.
#[derive(Debug, Default)]
pub struct State {
    pub items: HashMap<String, Value>,
    pub accounts: Vec<Value>,
    pub transactions: Vec<Value>,
    pub keys: Vec<String>,
    pub key_ttl_secs: i64,
    /// Answer the next call whose path starts with the prefix with (status, retry-after).
    pub faults: Vec<(String, u16, Option<u64>)>,
    /// Answer calls whose path starts with the prefix only after this long (a slow
    /// Pluggy, as during its incidents).
    pub slow: Option<(String, std::time::Duration)>,
    /// Answer `/v2/transactions` with 404, as where the cursor API is not offered.
    pub v2_disabled: bool,
    pub auth_calls: usize,
    /// `METHOD path` of every call after `/auth`.
    pub calls: Vec<String>,
    /// Registered webhooks as Pluggy returns them (never with their headers).
    pub webhooks: Vec<Value>,
    /// The custom headers each webhook was registered with, by webhook id.
    pub webhook_headers: HashMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct FakePluggy {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl FakePluggy {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            key_ttl_secs: 7200,
            ..State::default()
        }));
        let shared = state.clone();
        let addr = crate::loopback::serve(move |request| serve(shared.clone(), request)).await;
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, path_prefix: &str, status: u16, retry_after: Option<u64>) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((path_prefix.to_owned(), status, retry_after));
    }

    /// The worker flags that point it at this fake with the credentials it accepts.
    pub fn worker_flags(&self) -> Vec<String> {
        [
            "--pluggy-client-id",
            "fake-client",
            "--pluggy-client-secret",
            "fake-secret",
            "--pluggy-api-url",
            &self.url(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Makes every call under `path_prefix` answer after `delay`.
    pub fn slow_down(&self, path_prefix: &str, delay: std::time::Duration) {
        self.state.lock().unwrap().slow = Some((path_prefix.to_owned(), delay));
    }

    pub fn calls_to(&self, prefix: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| {
                c.split_once(' ')
                    .is_some_and(|(_, p)| p.starts_with(prefix))
            })
            .count()
    }
}

fn jwt(exp: i64) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        engine.encode(json!({"exp": exp, "jti": uuid::Uuid::new_v4().to_string()}).to_string()),
        engine.encode(b"signature")
    )
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":")))
        .collect()
}

async fn serve(
    state: Arc<Mutex<State>>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let params = query(request.uri());
    let key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // A call is recorded when it arrives, before any slowness.
    let delay = {
        let mut s = state.lock().unwrap();
        s.calls.push(format!("{method} {path}"));
        s.slow
            .clone()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
    };
    if let Some((_, delay)) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap();
    if let Some(i) = s
        .faults
        .iter()
        .position(|(prefix, _, _)| path.starts_with(prefix.as_str()))
    {
        let (_, status, retry_after) = s.faults.remove(i);
        let mut response = reply(status, json!({"code": status, "message": "injected"}));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    if path == "/auth" {
        let creds: Value = serde_json::from_slice(&body).unwrap_or_default();
        if creds["clientId"] != "fake-client" || creds["clientSecret"] != "fake-secret" {
            return reply(
                401,
                json!({"code": 401, "codeDescription": "CLIENT_KEYS_UNAUTHORIZED", "message": "bad keys"}),
            );
        }
        s.auth_calls += 1;
        let key = jwt(chrono::Utc::now().timestamp() + s.key_ttl_secs);
        s.keys.push(key.clone());
        return reply(200, json!({"apiKey": key}));
    }
    if !key.is_some_and(|k| s.keys.contains(&k)) {
        return reply(
            401,
            json!({"code": 401, "message": "invalid or expired api key"}),
        );
    }
    if let Some(id) = path.strip_prefix("/items/") {
        return match s.items.get(id) {
            Some(item) => reply(200, item.clone()),
            None => reply(404, json!({"code": 404, "message": "item not found"})),
        };
    }
    let page = |all: Vec<Value>, size: usize| {
        let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let total_pages = all.len().div_ceil(size).max(1);
        let results: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
        json!({"total": results.len(), "totalPages": total_pages, "page": page, "results": results})
    };
    if path == "/webhooks" || path.starts_with("/webhooks/") {
        return webhooks(&mut s, &method, &path, &body, page);
    }
    match path.as_str() {
        "/accounts" => {
            let item = params.get("itemId").cloned().unwrap_or_default();
            let all: Vec<Value> = s
                .accounts
                .iter()
                .filter(|a| a["itemId"] == item.as_str())
                .cloned()
                .collect();
            reply(200, page(all, 2))
        }
        "/v2/transactions" if s.v2_disabled => {
            reply(404, json!({"code": 404, "message": "not found"}))
        }
        "/v2/transactions" => {
            let account = params.get("accountId").cloned().unwrap_or_default();
            let from = params.get("createdAtFrom").cloned();
            let all: Vec<Value> = s
                .transactions
                .iter()
                .filter(|t| t["accountId"] == account.as_str())
                .filter(|t| {
                    from.as_deref()
                        .is_none_or(|f| t["createdAt"].as_str().unwrap_or_default() >= f)
                })
                .cloned()
                .collect();
            let after: usize = params
                .get("after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let results: Vec<Value> = all.iter().skip(after).take(3).cloned().collect();
            let next = (after + 3 < all.len()).then(|| {
                format!(
                    "https://api.pluggy.ai/v2/transactions?accountId={account}&after={}",
                    after + 3
                )
            });
            reply(200, json!({"results": results, "next": next}))
        }
        "/transactions" => {
            let ids: Option<Vec<String>> = params
                .get("ids")
                .map(|i| i.split(',').map(str::to_owned).collect());
            let account = params.get("accountId");
            let from = params.get("createdAtFrom");
            let all: Vec<Value> = s
                .transactions
                .iter()
                .filter(|t| {
                    ids.as_ref()
                        .is_none_or(|ids| ids.iter().any(|i| t["id"] == i.as_str()))
                })
                .filter(|t| account.is_none_or(|a| t["accountId"] == a.as_str()))
                .filter(|t| {
                    from.is_none_or(|f| t["createdAt"].as_str().unwrap_or_default() >= f.as_str())
                })
                .cloned()
                .collect();
            // Pluggy's page size (at most 500); 20 when not given.
            let size = params
                .get("pageSize")
                .and_then(|p| p.parse().ok())
                .unwrap_or(20usize)
                .min(500);
            reply(200, page(all, size))
        }
        _ => reply(404, json!({"code": 404, "message": "not found"})),
    }
}

/// `GET|POST /webhooks`, `PATCH /webhooks/{id}`, refusing URLs as Pluggy does.
fn webhooks(
    s: &mut State,
    method: &hyper::Method,
    path: &str,
    body: &[u8],
    page: impl Fn(Vec<Value>, usize) -> Value,
) -> Response<Full<Bytes>> {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let url_ok = |r: &Value| {
        r["url"].as_str().is_none_or(|u| {
            u.starts_with("https://") && !u.contains("localhost") && !u.contains("127.0.0.1")
        })
    };
    match (method.as_str(), path.strip_prefix("/webhooks/")) {
        ("GET", None) => reply(200, page(s.webhooks.clone(), 20)),
        ("POST", None) => {
            if !url_ok(&request) || request["event"].as_str().is_none() {
                return reply(400, json!({"code": 400, "message": "invalid webhook"}));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let now = chrono::Utc::now().to_rfc3339();
            s.webhook_headers
                .insert(id.clone(), request["headers"].clone());
            let hook = json!({"id": id, "url": request["url"], "event": request["event"],
                              "createdAt": now, "updatedAt": now, "disabledAt": null});
            s.webhooks.push(hook.clone());
            reply(201, hook)
        }
        ("PATCH", Some(id)) => {
            if !url_ok(&request) {
                return reply(400, json!({"code": 400, "message": "invalid webhook"}));
            }
            let Some(hook) = s.webhooks.iter_mut().find(|h| h["id"] == id) else {
                return reply(404, json!({"code": 404, "message": "webhook not found"}));
            };
            for field in ["url", "event"] {
                if !request[field].is_null() {
                    hook[field] = request[field].clone();
                }
            }
            // `enabled: true` turns a webhook Pluggy disabled back on.
            if request["enabled"] == json!(true) {
                hook["disabledAt"] = Value::Null;
            }
            hook["updatedAt"] = json!(chrono::Utc::now().to_rfc3339());
            let hook = hook.clone();
            if !request["headers"].is_null() {
                s.webhook_headers
                    .insert(id.to_owned(), request["headers"].clone());
            }
            reply(200, hook)
        }
        _ => reply(405, json!({"code": 405, "message": "method not allowed"})),
    }
}

/// An item, its accounts and transactions, as Pluggy shapes them.
pub fn seed(state: &mut State, item_id: &str, status: &str, execution: &str) {
    state.items.insert(
        item_id.to_owned(),
        json!({"id": item_id, "status": status, "executionStatus": execution, "error": null,
               "connector": {"id": 201, "name": "Banco Fake"}, "clientUserId": "user-42",
               "createdAt": "2025-02-01T10:00:00.000Z", "updatedAt": "2025-02-13T17:21:53.719Z",
               "lastUpdatedAt": "2025-02-13T17:21:53.719Z"}),
    );
    for a in 0..3 {
        state.accounts.push(json!({"id": format!("{item_id}-acc{a}"), "itemId": item_id, "type": "BANK", "subtype": "CHECKING_ACCOUNT",
            "name": format!("Conta {a}"), "number": "0001/12345-0", "balance": 1234.56, "currencyCode": "BRL"}));
        for t in 0..7 {
            state.transactions.push(json!({"id": format!("{item_id}-acc{a}-tx{t}"), "accountId": format!("{item_id}-acc{a}"),
                "date": "2025-02-12T15:00:01.000Z", "description": format!("PIX {t}"), "amount": -10.1 - f64::from(t),
                "currencyCode": "BRL", "type": "DEBIT", "status": "POSTED", "category": "Transfer",
                "createdAt": format!("2025-02-13T17:2{t}:00.000Z")}));
        }
    }
}
