//! The OpenQASM 2.0 front end.
//!
//! Reads `OPENQASM 2.0;` programs: `include "qelib1.inc"` (built in; see `qelib1.inc` beside this
//! file), `qreg`/`creg`, `gate` definitions (inlined), `U` and `CX`, `measure`, `reset`,
//! `barrier`, `if (creg == n) op;`, register broadcasting, and parameter expressions (`pi`,
//! `+ - * / ^`, unary minus, `sin cos tan exp ln sqrt`). `opaque` gates and other includes are
//! refused. Every error names `file:line:col`; nothing panics on bad input.

mod lexer;
mod parser;

use crate::circuit::Circuit;

/// The built-in `qelib1.inc`.
pub const QELIB1: &str = include_str!("qelib1.inc");

/// A front-end error with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct QasmError {
    /// The file (or label) parsed.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses an OpenQASM 2.0 program into a circuit; `file` labels errors.
pub fn parse(text: &str, file: &str) -> Result<Circuit, QasmError> {
    parse_limited(text, file, parser::MAX_OPS)
}

/// Like [`parse`], refusing programs that expand to more than `max_ops` operations — checked
/// while gate definitions are inlined, so nested definitions cannot blow up first.
pub fn parse_limited(text: &str, file: &str, max_ops: usize) -> Result<Circuit, QasmError> {
    parser::Parser::new(text, file, max_ops)?.program()
}

/// Reads and parses a file.
pub fn parse_file(path: &std::path::Path) -> Result<Circuit, QasmError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| QasmError {
        file: file.clone(),
        line: 1,
        col: 1,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file)
}
