//! `xdv ctl`: a client of `xdv serve`'s API (as `ch-remote` is of Cloud Hypervisor's).

use crate::Outcome;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Where the server is and who is asking.
pub(crate) struct Client {
    server: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(server: String, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            server: server.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Sends a request; the JSON answer, or the problem's words as the error.
    fn call(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Value> {
        let url = self.url(path);
        let mut resp = match (method, body) {
            ("GET", _) => with_auth(self.agent.get(&url), self.auth()).call(),
            ("DELETE", _) => with_auth(self.agent.delete(&url), self.auth()).call(),
            (_, Some((ctype, bytes))) => with_auth(self.agent.post(&url), self.auth())
                .header("content-type", ctype)
                .send(&bytes[..]),
            (_, None) => with_auth(self.agent.post(&url), self.auth()).send_empty(),
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let code = v["code"].as_str().unwrap_or("error");
            let detail = v["detail"].as_str().unwrap_or("");
            bail!("{method} {path}: {} {code}: {detail}", status.as_u16());
        }
        Ok(v)
    }
}

fn with_auth<B>(r: ureq::RequestBuilder<B>, auth: Option<String>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => r.header("authorization", a),
        None => r,
    }
}

fn print(v: &Value, json: bool, human: impl FnOnce(&Value) -> String) {
    if json {
        outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        outln!("{}", human(v));
    }
}

fn vhm_line(v: &Value) -> String {
    format!(
        "{:<24} {:<10} L{} vcpus {} fuel {}/{}",
        v["name"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["level"],
        v["vcpus"],
        v["fuel_used"],
        v["fuel_quota"]
    )
}

/// `xdv ctl host`.
pub(crate) fn host(c: &Client, json: bool) -> Result<Outcome> {
    let v = c.call("GET", "/v1/host", None)?;
    print(&v, json, |v| {
        format!(
            "xdv {} ({}, epoch {} ns): {} at {} ns",
            v["version"].as_str().unwrap_or("?"),
            v["mode"].as_str().unwrap_or("?"),
            v["epoch_ns"],
            v["health"].as_str().unwrap_or("?"),
            v["virtual_time_ns"]
        )
    });
    Ok(Outcome::Ok)
}

/// Uploads a module file (`.wasm`, or `.wat` text); its id.
fn upload_file(c: &Client, path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let ctype = if bytes.starts_with(b"\0asm") {
        "application/wasm"
    } else {
        "text/plain"
    };
    c.call("POST", "/v1/modules", Some((ctype, bytes)))
}

/// `xdv ctl module upload FILE`.
pub(crate) fn upload(c: &Client, path: &Path, json: bool) -> Result<Outcome> {
    let v = upload_file(c, path)?;
    print(&v, json, |v| {
        format!(
            "module {} ({} bytes)",
            v["id"].as_str().unwrap_or("?"),
            v["size"]
        )
    });
    Ok(Outcome::Ok)
}

/// `xdv ctl vhm create SPEC.toml`: the spec is one `[[vhm]]` table (or its keys at the top);
/// a `k.module` naming a file is uploaded first and replaced by its id.
pub(crate) fn create(c: &Client, spec: &Path, json: bool) -> Result<Outcome> {
    let text = std::fs::read_to_string(spec).with_context(|| format!("read {}", spec.display()))?;
    let table: toml::Value = toml::from_str(&text).with_context(|| spec.display().to_string())?;
    let table = match table.get("vhm").and_then(|v| v.as_array()) {
        Some(list) if list.len() == 1 => list[0].clone(),
        Some(_) => bail!("{}: one [[vhm]] table is expected", spec.display()),
        None => table,
    };
    let mut body: Value = serde_json::to_value(&table)?;
    let module = body
        .pointer("/k/module")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("the spec has no k.module")?;
    let is_id = module.len() == 64 && module.chars().all(|ch| ch.is_ascii_hexdigit());
    if !is_id {
        let base = spec.parent().unwrap_or(Path::new("."));
        let uploaded = upload_file(c, &base.join(&module))?;
        body["k"]["module"] = uploaded["id"].clone();
    }
    let v = c.call(
        "POST",
        "/v1/vhms",
        Some(("application/json", serde_json::to_vec(&body)?)),
    )?;
    print(&v, json, |v| format!("created {}", vhm_line(v)));
    Ok(Outcome::Ok)
}

/// `xdv ctl vhm list`.
pub(crate) fn list(c: &Client, json: bool) -> Result<Outcome> {
    let v = c.call("GET", "/v1/vhms", None)?;
    print(&v, json, |v| {
        let rows: Vec<String> = v["vhms"]
            .as_array()
            .map(|a| a.iter().map(vhm_line).collect())
            .unwrap_or_default();
        if rows.is_empty() {
            "no VHMs".to_string()
        } else {
            rows.join("\n")
        }
    });
    Ok(Outcome::Ok)
}

/// `xdv ctl vhm get NAME`.
pub(crate) fn get(c: &Client, name: &str, json: bool) -> Result<Outcome> {
    let v = c.call("GET", &format!("/v1/vhms/{name}"), None)?;
    print(&v, json, vhm_line);
    Ok(Outcome::Ok)
}

/// `xdv ctl vhm kill NAME`.
pub(crate) fn kill(c: &Client, name: &str, json: bool) -> Result<Outcome> {
    let v = c.call("DELETE", &format!("/v1/vhms/{name}"), None)?;
    print(&v, json, |v| format!("killed {}", vhm_line(v)));
    Ok(Outcome::Ok)
}

/// `xdv ctl channel A B`.
pub(crate) fn channel(c: &Client, a: &str, b: &str, capacity: u32, json: bool) -> Result<Outcome> {
    let body = serde_json::json!({ "ends": [a, b], "capacity": capacity });
    let v = c.call(
        "POST",
        "/v1/channels",
        Some(("application/json", serde_json::to_vec(&body)?)),
    )?;
    print(&v, json, |_| {
        format!("channel {a} <-> {b} (capacity {capacity})")
    });
    Ok(Outcome::Ok)
}

/// `xdv ctl accounting`.
pub(crate) fn accounting(c: &Client, json: bool) -> Result<Outcome> {
    let v = c.call("GET", "/v1/accounting", None)?;
    if json {
        print(&v, true, |_| String::new());
        return Ok(Outcome::Ok);
    }
    let rows: Vec<xdv_trace::ResourceRow> =
        serde_json::from_value(v["resource_table"].clone()).unwrap_or_default();
    outln!("{}", super::resource_table_text(&rows));
    if let Some(b) = v["budget"].as_object() {
        outln!(
            "budget left: fuel {} memory {} vcpus {} vhms {}/{}",
            b["fuel_left"],
            b["memory_left"],
            b["vcpus_left"],
            b["vhms_live"],
            b["max_vhms"]
        );
    }
    Ok(Outcome::Ok)
}

/// `xdv ctl events NAME [--since N]`: prints each event as it arrives (its JSON with
/// `--json`, else its sequence number and text), until the stream ends.
pub(crate) fn events(c: &Client, name: &str, since: u64, json: bool) -> Result<Outcome> {
    let url = c.url(&format!("/v1/vhms/{name}/events?since={since}"));
    let resp = with_auth(c.agent.get(&url), c.auth())
        .call()
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    use std::io::BufRead as _;
    for line in reader.lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim_start();
        if json {
            outln!("{data}");
        } else {
            let v: Value = serde_json::from_str(data).unwrap_or_default();
            outln!(
                "{:>8} {:>14} ns  {}",
                v["seq"].to_string(),
                v["time_ns"].to_string(),
                v["text"].as_str().unwrap_or("")
            );
        }
    }
    Ok(Outcome::Ok)
}
