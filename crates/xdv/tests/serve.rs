//! `xdv serve` end to end: the real server on an ephemeral loopback port, driven by a real HTTP
//! client; SIGTERM and SIGKILL; the trace replayed and resumed.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ALICE: &str = "a1111ffa220be5267070a2acf35f3eaacd823848fd53ada59d42425a93992444";
const BOB: &str = "f01506ba0c61a5da8a0f471618919fa4e2182fc7600abce80fa7099ed49d29cd";
const OPERATOR: &str = "c081339fe8fddee7ecfdc845e31be076b48c063747c251acc06422f6921f57ff";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn xdv_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("xdv")
}

/// A running `xdv serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `xdv serve` with `args`; waits for its listening line.
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(xdv_bin())
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server says where it listens")
                .unwrap();
            if let Some(rest) = line.split("http://").nth(1) {
                break format!("http://{}", rest.split("/v1").next().unwrap());
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    fn config(config: &Path, trace: &Path) -> Self {
        Self::start(&[config.as_os_str(), "--trace".as_ref(), trace.as_os_str()])
    }

    /// SIGTERM, then waits: the trace is finished.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "xdv serve exited {status}");
    }

    /// SIGKILL: the trace is left at its last commit.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// `(status, JSON body)` of a request.
fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let a = agent();
    let url = format!("{}{path}", s.base);
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut resp = match (method, body) {
        ("GET", _) => {
            let r = a.get(&url);
            match &auth {
                Some(h) => r.header("authorization", h),
                None => r,
            }
            .call()
        }
        ("DELETE", _) => {
            let r = a.delete(&url);
            match &auth {
                Some(h) => r.header("authorization", h),
                None => r,
            }
            .call()
        }
        (_, body) => {
            let r = a.post(&url);
            let r = match &auth {
                Some(h) => r.header("authorization", h),
                None => r,
            };
            r.send(&body.unwrap_or_default()[..])
        }
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A guest that sleeps (2^50 ns at a time) until it is killed. In free-run its host skips the
/// empty epochs to each wake-up, so virtual time races to the clock's horizon, where an
/// endless service pauses idle with the guest still asleep.
const SLEEPER: &str = r#"(module
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "time" (func $time (result i64)))
  (memory (export "memory") 1)
  (func (export "main")
    (loop $l (drop (call $sleep (i64.add (call $time) (i64.const 0x4000000000000)))) (br $l))))"#;

fn upload(s: &Server, token: &str, guest: &str) -> String {
    let wat = match guest {
        "sleeper" => SLEEPER.as_bytes().to_vec(),
        _ => std::fs::read(example(&format!("guests/{guest}"))).unwrap(),
    };
    let (status, v) = call(s, "POST", "/v1/modules", Some(token), Some(wat));
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn create(s: &Server, token: &str, name: &str, module: &str, fuel: u64) -> (u16, Value) {
    let spec = json!({
        "name": name,
        "k": { "vcpus": 1, "memory_limit": "64 KiB", "module": module },
        "policy": { "fuel_quota": fuel },
    });
    call(
        s,
        "POST",
        "/v1/vhms",
        Some(token),
        Some(serde_json::to_vec(&spec).unwrap()),
    )
}

/// The `data:` lines of a VHM's event stream from `since`, until it ends.
fn stream(s: &Server, token: &str, name: &str, since: u64) -> Vec<String> {
    let url = format!("{}/v1/vhms/{name}/events?since={since}", s.base);
    let resp = agent()
        .get(&url)
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    BufReader::new(resp.into_body().into_reader())
        .lines()
        .map(Result::unwrap)
        .filter_map(|l| l.strip_prefix("data:").map(|d| d.trim_start().to_string()))
        .collect()
}

fn xdv_out(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(xdv_bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Waits until `name` has stopped (`GET` shows it not running).
fn wait_stopped(s: &Server, token: &str, name: &str) -> Value {
    for _ in 0..200 {
        let (status, v) = call(s, "GET", &format!("/v1/vhms/{name}"), Some(token), None);
        assert_eq!(status, 200, "{v}");
        if v["state"] != "running" {
            return v;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{name} never stopped");
}

fn request_events(trace: &Path) -> Vec<Value> {
    let (ok, out) = xdv_out(&[
        "trace".as_ref(),
        "show".as_ref(),
        trace.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(ok);
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "request")
        .collect()
}

#[test]
fn tenants_are_confined_and_the_service_replays() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("serve.xdv");
    let s = Server::config(&example("serve.toml"), &trace);

    let (status, host) = call(&s, "GET", "/v1/host", None, None);
    assert_eq!((status, host["health"].as_str()), (200, Some("ok")));

    // Wrong or missing token: 401.
    assert_eq!(call(&s, "GET", "/v1/vhms", None, None).0, 401);
    let (status, v) = call(&s, "GET", "/v1/vhms", Some("not-a-token"), None);
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));

    let alices = upload(&s, ALICE, "hello.wat");
    let bobs = upload(&s, BOB, "sleeper");
    let (status, v) = create(&s, ALICE, "a1", &alices, 1_000_000);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["tenant"], "alice");
    let (status, v) = create(&s, BOB, "b1", &bobs, 1_000_000);
    assert_eq!(status, 201, "{v}");

    // Each sees only its own; another tenant's VHM or module is 404, never 403.
    let (_, list) = call(&s, "GET", "/v1/vhms", Some(ALICE), None);
    let names: Vec<&str> = list["vhms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1"]);
    assert_eq!(call(&s, "GET", "/v1/vhms/a1", Some(BOB), None).0, 404);
    assert_eq!(call(&s, "DELETE", "/v1/vhms/a1", Some(BOB), None).0, 404);
    assert_eq!(
        call(&s, "GET", "/v1/vhms/a1/events", Some(BOB), None).0,
        404
    );
    let (status, v) = create(&s, BOB, "b2", &alices, 1_000_000);
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("no_module")),
        "{v}"
    );
    let body = serde_json::to_vec(&json!({ "ends": ["b1", "a1"] })).unwrap();
    assert_eq!(
        call(&s, "POST", "/v1/channels", Some(BOB), Some(body)).0,
        404
    );
    let (_, acc) = call(&s, "GET", "/v1/accounting", Some(BOB), None);
    assert!(acc["resource_table"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["vhm_name"].as_str().unwrap().starts_with("bob:")));
    assert_eq!(call(&s, "GET", "/v1/trace", Some(BOB), None).0, 403);

    // Over the tenant's budget (bob has 100 000 000 fuel, 1 000 000 carved): refused.
    let (status, v) = create(&s, BOB, "greedy", &bobs, 100_000_000);
    assert_eq!(
        (status, v["code"].as_str()),
        (422, Some("over_budget")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("fuel"), "{v}");
    // A bad spec names the field.
    let spec =
        serde_json::to_vec(&json!({ "name": "x", "k": { "module": bobs, "vcpus": 0 } })).unwrap();
    let (status, v) = call(&s, "POST", "/v1/vhms", Some(BOB), Some(spec));
    assert_eq!(status, 422, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("k.vcpus"), "{v}");
    // An oversized body: 413, as a problem.
    let (status, v) = call(
        &s,
        "POST",
        "/v1/modules",
        Some(BOB),
        Some(vec![b'x'; 2 << 20]),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );

    // The stream of a VHM that ran to its end equals `trace show --vhm`.
    let done = wait_stopped(&s, ALICE, "a1");
    assert_eq!(done["state"], "halted", "{done}");
    let streamed = stream(&s, ALICE, "a1", 0);
    assert!(streamed.len() > 5);
    // Kill bob's compute VHM.
    let (status, v) = call(&s, "DELETE", "/v1/vhms/b1", Some(BOB), None);
    assert_eq!((status, v["state"].as_str()), (200, Some("killed")), "{v}");
    // Bob's stream of his killed VHM ends with its exit; killing it again finds nothing.
    let bobs_events = stream(&s, BOB, "b1", 0);
    let last: Value = serde_json::from_str(bobs_events.last().unwrap()).unwrap();
    assert_eq!(last["event"]["VhmExited"]["reason"], "Killed", "{last}");
    let (status, v) = call(&s, "DELETE", "/v1/vhms/b1", Some(BOB), None);
    assert_eq!((status, v["code"].as_str()), (404, Some("no_vhm")), "{v}");
    // The operator sees both tenants' VHMs, by their host names.
    let (_, list) = call(&s, "GET", "/v1/vhms", Some(OPERATOR), None);
    assert_eq!(list["vhms"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(&s, "GET", "/v1/vhms/alice:a1", Some(OPERATOR), None).0,
        200
    );
    let (status, _) = call(&s, "GET", "/v1/trace", Some(OPERATOR), None);
    assert_eq!(status, 200);
    s.stop();

    let (ok, shown) = xdv_out(&[
        "trace".as_ref(),
        "show".as_ref(),
        trace.as_os_str(),
        "--vhm".as_ref(),
        "alice:a1".as_ref(),
        "--json".as_ref(),
    ]);
    assert!(ok);
    assert_eq!(
        streamed,
        shown.lines().map(str::to_string).collect::<Vec<_>>()
    );
    // Every acknowledged request is in the trace (2 uploads, 2 creations, the refused ones, the
    // kill), and the whole service replays with no network.
    let requests = request_events(&trace);
    assert!(requests.len() >= 7, "{requests:?}");
    let (ok, out) = xdv_out(&["replay".as_ref(), trace.as_os_str()]);
    assert!(ok, "{out}");
    assert!(out.contains("replay identical"), "{out}");
    let (ok, _) = xdv_out(&["trace".as_ref(), "verify".as_ref(), trace.as_os_str()]);
    assert!(ok);
}

#[test]
fn rate_limits_answer_429() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("serve.toml"))
        .unwrap()
        .replace("requests_per_s = 200", "requests_per_s = 1")
        .replace("request_burst = 400", "request_burst = 3");
    let config = dir.path().join("tight.toml");
    std::fs::write(&config, text).unwrap();
    let s = Server::config(&config, &dir.path().join("t.xdv"));
    let statuses: Vec<u16> = (0..5)
        .map(|_| call(&s, "GET", "/v1/vhms", Some(BOB), None).0)
        .collect();
    assert_eq!(&statuses[..3], [200, 200, 200]);
    let (status, v) = call(&s, "GET", "/v1/vhms", Some(BOB), None);
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    // Another tenant's bucket is its own.
    assert_eq!(call(&s, "GET", "/v1/vhms", Some(ALICE), None).0, 200);
    s.stop();
}

#[test]
fn a_killed_service_resumes_with_every_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("crash.xdv");
    let s = Server::config(&example("serve.toml"), &trace);
    let id = upload(&s, ALICE, "hello.wat");
    let mut acked = 1;
    for name in ["r1", "r2"] {
        let (status, v) = create(&s, ALICE, name, &id, 1_000_000);
        assert_eq!(status, 201, "{v}");
        acked += 1;
    }
    wait_stopped(&s, ALICE, "r1");
    let before = stream(&s, ALICE, "r1", 0);
    s.kill9();
    assert!(request_events(&trace).len() >= acked);

    let s = Server::start(&["--resume".as_ref(), trace.as_os_str()]);
    let (_, list) = call(&s, "GET", "/v1/vhms", Some(ALICE), None);
    let names: Vec<&str> = list["vhms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r1", "r2"]);
    // A stream resumed with `since` misses nothing and repeats nothing.
    let first: Value = serde_json::from_str(&before[3]).unwrap();
    let seq = first["seq"].as_u64().unwrap();
    let again = stream(&s, ALICE, "r1", seq);
    assert_eq!(before[3..], again[..], "resumed from seq {seq}");
    // The resumed service takes new requests.
    let (status, v) = create(&s, ALICE, "r3", &id, 1_000_000);
    assert_eq!(status, 201, "{v}");
    s.stop();
    let (ok, out) = xdv_out(&["replay".as_ref(), trace.as_os_str()]);
    assert!(ok, "{out}");
    assert!(out.contains("replay identical"), "{out}");
}

/// Every operation of `docs/api/openapi.yaml` is served, and its answers are among the ones the
/// document lists, with the required fields of the documented body.
#[test]
fn the_openapi_document_matches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::config(&example("serve.toml"), &dir.path().join("o.xdv"));
    let (status, doc) = call(&s, "GET", "/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let id = upload(&s, ALICE, "hello.wat");
    let (status, _) = create(&s, ALICE, "w", &id, 1_000_000);
    assert_eq!(status, 201);
    let schemas = &doc["components"]["schemas"];
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => schemas[r.rsplit('/').next().unwrap()].clone(),
            None => v.clone(),
        }
    };
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{name}", "w");
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            if method == "PARAMETERS" || concrete.ends_with("/events") || concrete == "/v1/trace" {
                continue;
            }
            let token = if concrete == "/v1/trace" {
                OPERATOR
            } else {
                ALICE
            };
            let body = match concrete.as_str() {
                "/v1/vhms" => {
                    Some(serde_json::to_vec(&json!({"name": "w2", "k": {"module": id}})).unwrap())
                }
                "/v1/channels" => Some(serde_json::to_vec(&json!({"ends": ["w", "w2"]})).unwrap()),
                "/v1/modules" => Some(std::fs::read(example("guests/compute.wat")).unwrap()),
                _ => None,
            };
            if method == "DELETE" {
                continue;
            }
            let (status, v) = call(&s, &method, &concrete, Some(token), body);
            let responses = &op["responses"];
            let documented = &responses[status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {path}: {status} is not documented: {v}"
            );
            let schema = documented
                .pointer("/content/application~1json/schema")
                .or_else(|| documented.pointer("/content/application~1problem+json/schema"))
                .map(resolve);
            let schema = match (schema, documented["$ref"].as_str()) {
                (Some(s), _) => s,
                (None, Some(_)) => schemas["Problem"].clone(),
                (None, None) => continue,
            };
            for field in schema["required"].as_array().into_iter().flatten() {
                let f = field.as_str().unwrap();
                assert!(
                    v.get(f).is_some(),
                    "{method} {path} ({status}): no `{f}` in {v}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");
    s.stop();
}

/// `--unix PATH`: the same API on a Unix socket (tokens still apply).
#[cfg(unix)]
#[test]
fn the_api_is_served_on_a_unix_socket() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("xdv.sock");
    let mut child = Command::new(xdv_bin())
        .arg("serve")
        .arg(example("serve.toml"))
        .arg("--trace")
        .arg(dir.path().join("u.xdv"))
        .arg("--unix")
        .arg(&sock)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(&format!("unix:{}", sock.display())), "{line}");
    let get = |path: &str, token: Option<&str>| -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: xdv\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let host = get("/v1/host", None);
    assert!(host.starts_with("HTTP/1.1 200"), "{host}");
    assert!(host.contains("\"health\":\"ok\""), "{host}");
    assert!(get("/v1/vhms", None).starts_with("HTTP/1.1 401"));
    assert!(get("/v1/vhms", Some(ALICE)).starts_with("HTTP/1.1 200"));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
}

/// `xdv ctl` against a running server: text and `--json`, `XDV_SERVER` and `XDV_TOKEN`.
#[test]
fn xdv_ctl_drives_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::config(&example("serve.toml"), &dir.path().join("c.xdv"));
    let ctl = |args: &[&str]| -> (bool, String, String) {
        let out = Command::new(xdv_bin())
            .arg("ctl")
            .args(args)
            .env("XDV_SERVER", &s.base)
            .env("XDV_TOKEN", ALICE)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = ctl(&["host"]);
    assert!(ok && out.contains("free-run"), "{out}{err}");
    let (ok, out, err) = ctl(&["vhm", "create", example("serve-vhm.toml").to_str().unwrap()]);
    assert!(ok && out.starts_with("created worker"), "{out}{err}");
    let (ok, out, _) = ctl(&["--json", "vhm", "list"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["vhms"][0]["name"], "worker");
    wait_stopped(&s, ALICE, "worker");
    let (ok, out, _) = ctl(&["vhm", "get", "worker"]);
    assert!(ok && out.contains("halted"), "{out}");
    let (ok, out, _) = ctl(&["--json", "events", "worker"]);
    assert!(ok);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "vhm_created");
    let (ok, out, _) = ctl(&["accounting"]);
    assert!(
        ok && out.contains("alice:worker") && out.contains("budget left"),
        "{out}"
    );
    // An error is the problem's code and detail, exit 2.
    let (ok, _, err) = ctl(&["vhm", "kill", "nobody"]);
    assert!(!ok && err.contains("404 not_found"), "{err}");
    s.stop();
}

/// Paced mode: virtual time follows wall time even when idle; free-run stands still when idle.
#[test]
fn paced_time_follows_the_wall_and_free_run_waits() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("serve.toml"))
        .unwrap()
        .replace("mode = \"free-run\"", "mode = \"paced\"\npace = 1");
    let config = dir.path().join("paced.toml");
    std::fs::write(&config, text).unwrap();
    let vtime = |s: &Server| {
        call(s, "GET", "/v1/host", None, None).1["virtual_time_ns"]
            .as_u64()
            .unwrap()
    };
    let paced = Server::config(&config, &dir.path().join("p.xdv"));
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let t = vtime(&paced);
    let wall = started.elapsed().as_nanos() as u64;
    // Bounds far apart: it moves, and no faster than the wall (plus an epoch).
    assert!(
        t > 0 && t <= wall + 2_000_000,
        "virtual {t} ns after {wall} ns of wall time"
    );
    paced.stop();
    let free = Server::config(&example("serve.toml"), &dir.path().join("f.xdv"));
    let a = vtime(&free);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(vtime(&free), a, "an idle free-run host waits for requests");
    free.stop();
}
