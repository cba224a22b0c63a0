//! The ceiling of the HTTP stack for `bench/serve/run.sh`: a bare axum handler that answers
//! `GET /v1/vhms/{name}` with a JSON body of the same shape as `xdv serve`'s, and nothing else
//! (no authentication, no rate limit, no snapshot).
//!
//! Usage: `bare_axum 127.0.0.1:7921`

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use xdv_hv::service::VhmView;

async fn vhm(Path(name): Path<String>) -> Json<VhmView> {
    Json(VhmView {
        name,
        id: 0,
        tenant: Some("bench".into()),
        state: "running".into(),
        level: 1,
        vcpus: 1,
        fuel_quota: 10_000_000_000_000,
        fuel_used: 123_456_789,
        memory_quota: 327_680,
        end_ns: None,
    })
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7921".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let app = Router::new().route("/v1/vhms/{name}", get(vhm));
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
