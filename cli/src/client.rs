//! The node's REST API as the client verbs (`policy`, `tx`, `load`) reach it: one blocking
//! HTTP client, answers turned into `[CODE] message` errors, the admin token.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::args::{NodeArgs, TokenArgs};

pub(crate) struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    pub(crate) fn new(node: &NodeArgs) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: node.node.trim_end_matches('/').to_string(),
        })
    }

    fn answer(&self, r: reqwest::Result<reqwest::blocking::Response>) -> Result<Value> {
        let r = r.with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = r.status();
        let body: Value = r.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("E_HTTP");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        bail!("[{code}] {msg} (HTTP {})", status.as_u16())
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        self.answer(self.http.get(format!("{}{path}", self.base)).send())
    }

    pub(crate) fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.answer(req.send())
    }
}

pub(crate) fn token(t: &TokenArgs) -> Result<&str> {
    t.token.as_deref().context(
        "[E_UNAUTHENTICATED] admin verbs need --token or AURIGRAPH_ADMIN_TOKEN (the node's \
         admin.token, or <data_dir>/admin.token)",
    )
}
