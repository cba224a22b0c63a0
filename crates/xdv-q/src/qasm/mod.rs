//! The OpenQASM 2.0 front end.
//!
//! Reads `OPENQASM 2.0;` programs: `include "qelib1.inc"` (built in; see `qelib1.inc` beside this
//! file), `qreg`/`creg`, `gate` definitions (inlined), `U` and `CX`, `measure`, `reset`,
//! `barrier`, `if (creg == n) op;`, register broadcasting, and parameter expressions (`pi`,
//! `+ - * / ^`, unary minus, `sin cos tan exp ln sqrt`). `opaque` gates and other includes are
//! refused. Every error names `file:line:col`; nothing panics on bad input.
//!
//! Hostile text is bounded before it can exhaust the host: an expression nests at most
//! [`MAX_EXPR_DEPTH`] levels, gate definitions inline at most [`MAX_INLINE_DEPTH`] deep and make
//! at most [`INLINE_STEPS_PER_OP`] applications per operation allowed, and an `if` cannot hold
//! another `if`. Each limit is checked while parsing, before a deep tree or a long expansion is
//! built, and is refused as an ordinary [`QasmError`].

mod lexer;
mod parser;

use crate::circuit::Circuit;

/// Deepest nesting of a parameter expression. Each pair of parentheses, each unary sign, each
/// function call (`sin(…)`) and each binary operator counts one level on the path down to a
/// number or a name, which is one level itself: `((1))` has three, `1+2*3` three, and a chain
/// `1+1+…+1` of 65 terms 65. A deeper expression is refused at the token that goes past the
/// limit with `expression nested deeper than 64 levels`, before the tree is built, so neither
/// parsing, evaluating nor dropping it recurses deeper than this.
pub const MAX_EXPR_DEPTH: usize = 64;

/// Deepest gate-definition nesting inlined before giving up (recursion is impossible in valid
/// OpenQASM 2, since a gate may only use gates defined before it; this bounds hostile input such
/// as a gate that calls itself).
pub const MAX_INLINE_DEPTH: usize = 64;

/// Gate applications the inliner may make per operation the program is allowed
/// ([`parse_limited`]'s `max_ops`): at most `max_ops × 4` in all, counted over the whole
/// program. This bounds the work spent on definitions that expand to nothing (empty bodies,
/// barriers only), which the operation limit alone does not see: forty nested definitions that
/// each call an empty gate twice would otherwise take 2⁴⁰ applications. The library's gates take
/// at most 3⅓ applications per operation (`sx`: 10 for 3), the QASMBench small corpus at most 3.1.
pub const INLINE_STEPS_PER_OP: usize = 4;

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
    use std::io::Read;
    let file = path.display().to_string();
    let err = |message: String| QasmError {
        file: file.clone(),
        line: 1,
        col: 1,
        message,
    };
    // Only a regular file, and only up to the limit: a FIFO would block, a device never end.
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(err("cannot read: not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(err(format!(
            "larger than {MAX_FILE_BYTES} bytes, the most a program file may be (MAX_FILE_BYTES)"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| err("cannot read: not UTF-8".into()))?;
    parse(&text, &file)
}

/// Largest program file [`parse_file`] reads (64 MiB; the largest QASMBench circuit is 3.3 MB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
