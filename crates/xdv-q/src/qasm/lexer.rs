//! Tokens of OpenQASM 2.0, with their positions.

use super::QasmError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(u64),
    Real(f64),
    Str(String),
    /// One of `; , ( ) [ ] { } + - * / ^ =` or `->` / `==`.
    Sym(&'static str),
    Eof,
}

/// A token with its 1-based line and column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
    pub(crate) col: usize,
}

const SYMS: [&str; 16] = [
    "->", "==", "=", ";", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "^",
];

/// Splits `text` into tokens; `file` labels errors.
// Long by design: one arm per token class of the lexical grammar.
pub(crate) fn lex(text: &str, file: &str) -> Result<Vec<Token>, QasmError> {
    let b = text.as_bytes();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut out = Vec::new();
    let err = |line, col, message: String| QasmError {
        file: file.to_string(),
        line,
        col,
        message,
    };
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if text[i..].starts_with("/*") {
            let end = text[i + 2..]
                .find("*/")
                .ok_or_else(|| err(line, col, "unterminated comment".into()))?;
            for ch in text[i..i + 2 + end + 2].chars() {
                if ch == '\n' {
                    line += 1;
                    col = 1;
                } else {
                    col += 1;
                }
            }
            i += end + 4;
            continue;
        }
        let (start_line, start_col) = (line, col);
        let tok =
            if c.is_ascii_alphabetic() || c == b'_' {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                col += i - s;
                Tok::Ident(text[s..i].to_string())
            } else if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                let s = i;
                let mut real = false;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    real |= b[i] == b'.';
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    real = true;
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                col += i - s;
                let s = &text[s..i];
                if real {
                    Tok::Real(s.parse().map_err(|_| {
                        err(start_line, start_col, format!("malformed number {s:?}"))
                    })?)
                } else {
                    Tok::Int(s.parse().map_err(|_| {
                        err(start_line, start_col, format!("integer {s} is too large"))
                    })?)
                }
            } else if c == b'"' {
                let end = text[i + 1..]
                    .find('"')
                    .ok_or_else(|| err(line, col, "unterminated string".into()))?;
                let s = text[i + 1..i + 1 + end].to_string();
                i += end + 2;
                col += end + 2;
                Tok::Str(s)
            } else if let Some(sym) = SYMS.iter().find(|s| text[i..].starts_with(**s)) {
                i += sym.len();
                col += sym.len();
                Tok::Sym(sym)
            } else {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(line, col, format!("unexpected character {ch:?}")));
            };
        out.push(Token {
            tok,
            line: start_line,
            col: start_col,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
        col,
    });
    Ok(out)
}
