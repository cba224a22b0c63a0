//! `xdv serve`: the service (docs/serve.md), and `xdv serve token`.

use crate::Outcome;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `xdv serve CONFIG`: serves until SIGTERM, then prints the finished trace's hash.
pub(crate) fn serve(
    config: &Path,
    (listen, unix): (Option<SocketAddr>, Option<PathBuf>),
    trace: Option<PathBuf>,
) -> Result<Outcome> {
    let prepared = xdv_hv::prepare(config)?;
    let trace = match trace {
        Some(t) => t,
        None => PathBuf::from(format!(
            "{}.xdv",
            config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("serve")
        )),
    };
    let shown = trace.display().to_string();
    let head = xdv_serve::serve(xdv_serve::ServeOptions {
        config: prepared,
        listen,
        unix,
        trace,
        resume: false,
        on_listening: Some(Box::new(move |at| {
            eprintln!("xdv serve: listening on {at}/v1 (trace {shown})");
        })),
    })
    .context("xdv serve")?;
    outln!("service stopped; trace final hash {}", head.to_hex());
    Ok(Outcome::Ok)
}

/// `xdv serve --resume TRACE`: the config is the one stored in the trace.
pub(crate) fn serve_resume(
    trace: &Path,
    config: Option<&Path>,
    (listen, unix): (Option<SocketAddr>, Option<PathBuf>),
) -> Result<Outcome> {
    let reader = xdv_trace::TraceReader::open_to_resume(trace)?;
    let header = reader.header()?;
    drop(reader);
    if let Some(c) = config {
        let given = xdv_manifest::Manifest::from_file(c)?;
        if given.text != header.manifest_text {
            anyhow::bail!(
                "{}: not the config {} was recorded with ({}); resume with the trace alone: xdv serve --resume {}",
                c.display(),
                trace.display(),
                header.manifest_name,
                trace.display()
            );
        }
    }
    let manifest = xdv_manifest::Manifest::parse(&header.manifest_text, &header.manifest_name)?;
    let prepared = xdv_hv::Prepared {
        manifest,
        modules: Vec::new(),
    };
    let shown = trace.display().to_string();
    let head = xdv_serve::serve(xdv_serve::ServeOptions {
        config: prepared,
        listen,
        unix,
        trace: trace.to_path_buf(),
        resume: true,
        on_listening: Some(Box::new(move |at| {
            eprintln!("xdv serve: resumed {shown}; listening on {at}/v1");
        })),
    })
    .context("xdv serve --resume")?;
    outln!("service stopped; trace final hash {}", head.to_hex());
    Ok(Outcome::Ok)
}

/// `xdv serve token`: a fresh token and the config line holding its hash.
pub(crate) fn token() -> Result<Outcome> {
    let (token, hash) = xdv_serve::new_token().map_err(|e| anyhow::anyhow!("{e}"))?;
    outln!("token: {token}");
    outln!("token_hash = \"{hash}\"");
    Ok(Outcome::Ok)
}
