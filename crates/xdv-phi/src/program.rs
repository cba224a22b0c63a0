//! The transform text form: an OpenPulse-like subset.
//!
//! ```text
//! // comments run to the end of the line
//! frame d0 = newframe(q0, 5.1e9, 0);       // port, frequency (Hz), phase (radians)
//! frame d1 = copyframe(d0);                // a new frame with d0's port, frequency, phase, clock
//! play(d0, gaussian(0.5, 160, 40));        // envelope(amplitude, duration ns, …)
//! delay[100] d0, d1;                       // ns
//! shift_phase(d0, pi/2);  set_phase(d0, 0);
//! shift_frequency(d0, -1e6);  set_frequency(d0, 5.2e9);
//! capture(d1, 200);                        // integrate the port's signal for 200 ns
//! barrier d0, d1;                          // align the frames' clocks to the latest
//! ```
//!
//! Envelopes: `constant(a, d)`, `gaussian(a, d, σ)`, `gaussian_square(a, d, σ, width)`,
//! `drag(a, d, σ, β)`, `sine(a, d, f, φ)`. Numbers may be written as expressions of literals and
//! `pi` with `+ - * /`, unary minus and parentheses, nested at most [`MAX_EXPR_DEPTH`] levels;
//! durations are non-negative integers. Every error names `file:line:col`.

use crate::envelope::Envelope;
use std::fmt;

/// Longest name (of a frame or a port) a transform may use, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Deepest nesting of a number expression: each opening parenthesis and each unary minus counts
/// one level, and the number or `pi` inside one more, so `-(1)` has three. A deeper expression is
/// refused at the token that goes past the limit (`expression nested deeper than 64 levels`),
/// so the parser, which evaluates as it reads, never recurses deeper than this. Binary operators
/// do not nest (`1+1+…+1` is read in a loop) and are not limited.
pub const MAX_EXPR_DEPTH: usize = 64;

/// A parse error with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    /// The file (or label) parsed.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// Where a statement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `frame name = newframe(port, freq, phase);`
    NewFrame {
        /// The new frame's name.
        name: String,
        /// The port's name.
        port: String,
        /// Frequency, Hz.
        freq: f64,
        /// Phase, radians.
        phase: f64,
    },
    /// `frame name = copyframe(src);`
    CopyFrame {
        /// The new frame's name.
        name: String,
        /// The frame copied.
        src: String,
    },
    /// `play(frame, envelope);`
    Play {
        /// The frame.
        frame: String,
        /// What to play.
        envelope: Envelope,
    },
    /// `delay[d] frames;`
    Delay {
        /// Duration, ns.
        duration: u64,
        /// The frames.
        frames: Vec<String>,
    },
    /// `shift_phase(frame, θ);`
    ShiftPhase {
        /// The frame.
        frame: String,
        /// Radians.
        by: f64,
    },
    /// `set_phase(frame, θ);`
    SetPhase {
        /// The frame.
        frame: String,
        /// Radians.
        to: f64,
    },
    /// `shift_frequency(frame, Δf);`
    ShiftFrequency {
        /// The frame.
        frame: String,
        /// Hz.
        by: f64,
    },
    /// `set_frequency(frame, f);`
    SetFrequency {
        /// The frame.
        frame: String,
        /// Hz.
        to: f64,
    },
    /// `capture(frame, d);`
    Capture {
        /// The frame.
        frame: String,
        /// Duration, ns.
        duration: u64,
    },
    /// `barrier frames;`
    Barrier {
        /// The frames.
        frames: Vec<String>,
    },
}

/// A parsed transform.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    /// Statements with where each starts.
    pub stmts: Vec<(Stmt, Loc)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64, bool),
    Sym(char),
    Eof,
}

struct Parser<'a> {
    toks: Vec<(Tok, Loc)>,
    pos: usize,
    file: &'a str,
}

fn lex(text: &str, file: &str) -> Result<Vec<(Tok, Loc)>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    while i < chars.len() {
        let c = chars[i];
        let loc = Loc { line, col };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
        } else if c.is_whitespace() {
            i += 1;
            col += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            col += i - s;
            out.push((Tok::Ident(chars[s..i].iter().collect()), loc));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let s = i;
            let mut int = true;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                int &= chars[i] != '.';
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                int = false;
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = chars[s..i].iter().filter(|&&c| c != '_').collect();
            col += i - s;
            let v: f64 = text.parse().map_err(|_| ParseError {
                file: file.to_string(),
                line: loc.line,
                col: loc.col,
                message: format!("{text:?} is not a number"),
            })?;
            out.push((Tok::Num(v, int), loc));
        } else if "()[],;=+-*/".contains(c) {
            i += 1;
            col += 1;
            out.push((Tok::Sym(c), loc));
        } else {
            return Err(ParseError {
                file: file.to_string(),
                line,
                col,
                message: format!("unexpected character {c:?}"),
            });
        }
    }
    out.push((Tok::Eof, Loc { line, col }));
    Ok(out)
}

impl Program {
    /// Parses a transform; `file` labels errors.
    pub fn parse(text: &str, file: &str) -> Result<Program, ParseError> {
        let mut p = Parser {
            toks: lex(text, file)?,
            pos: 0,
            file,
        };
        let mut stmts = Vec::new();
        while p.peek() != &Tok::Eof {
            stmts.push(p.stmt()?);
        }
        Ok(Program { stmts })
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn loc(&self) -> Loc {
        self.toks[self.pos].1
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        let l = self.loc();
        Err(ParseError {
            file: self.file.to_string(),
            line: l.line,
            col: l.col,
            message: message.into(),
        })
    }
    fn describe(t: &Tok) -> String {
        match t {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Num(v, _) => format!("`{v}`"),
            Tok::Sym(c) => format!("`{c}`"),
            Tok::Eof => "the end of the text".into(),
        }
    }
    fn sym(&mut self, c: char) -> Result<(), ParseError> {
        if self.peek() == &Tok::Sym(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!(
                "expected `{c}`, found {}",
                Self::describe(self.peek())
            ))
        }
    }
    fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) if s.len() > MAX_NAME_BYTES => self.err(format!(
                "a name is at most {MAX_NAME_BYTES} bytes, this one {}",
                s.len()
            )),
            Tok::Ident(s) => {
                self.pos += 1;
                Ok(s)
            }
            t => self.err(format!("expected a name, found {}", Self::describe(&t))),
        }
    }
    fn duration(&mut self) -> Result<u64, ParseError> {
        match *self.peek() {
            Tok::Num(v, true) if (0.0..1e15).contains(&v) => {
                self.pos += 1;
                Ok(v as u64)
            }
            ref t => self.err(format!(
                "expected a duration in whole nanoseconds, found {}",
                Self::describe(t)
            )),
        }
    }
    /// expr := term (('+'|'-') term)*
    ///
    /// `depth` counts the levels above it (see [`MAX_EXPR_DEPTH`]).
    fn expr(&mut self, depth: usize) -> Result<f64, ParseError> {
        let mut v = self.term(depth)?;
        loop {
            match self.peek() {
                Tok::Sym('+') => {
                    self.pos += 1;
                    v += self.term(depth)?;
                }
                Tok::Sym('-') => {
                    self.pos += 1;
                    v -= self.term(depth)?;
                }
                _ => return Ok(v),
            }
        }
    }
    fn term(&mut self, depth: usize) -> Result<f64, ParseError> {
        let mut v = self.unary(depth)?;
        loop {
            match self.peek() {
                Tok::Sym('*') => {
                    self.pos += 1;
                    v *= self.unary(depth)?;
                }
                Tok::Sym('/') => {
                    self.pos += 1;
                    let at = self.loc();
                    let d = self.unary(depth)?;
                    if d == 0.0 {
                        return Err(ParseError {
                            file: self.file.to_string(),
                            line: at.line,
                            col: at.col,
                            message: "division by zero".into(),
                        });
                    }
                    v /= d;
                }
                _ => return Ok(v),
            }
        }
    }
    fn unary(&mut self, depth: usize) -> Result<f64, ParseError> {
        // Even a number is one level.
        if depth + 1 > MAX_EXPR_DEPTH {
            return self.err(format!(
                "expression nested deeper than {MAX_EXPR_DEPTH} levels"
            ));
        }
        match self.peek().clone() {
            Tok::Sym('-') => {
                self.pos += 1;
                Ok(-self.unary(depth + 1)?)
            }
            Tok::Sym('(') => {
                self.pos += 1;
                let v = self.expr(depth + 1)?;
                self.sym(')')?;
                Ok(v)
            }
            Tok::Num(v, _) => {
                self.pos += 1;
                Ok(v)
            }
            Tok::Ident(s) if s == "pi" => {
                self.pos += 1;
                Ok(std::f64::consts::PI)
            }
            t => self.err(format!("expected a number, found {}", Self::describe(&t))),
        }
    }
    fn frame_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut v = vec![self.ident()?];
        while self.peek() == &Tok::Sym(',') {
            self.pos += 1;
            v.push(self.ident()?);
        }
        Ok(v)
    }
    fn envelope(&mut self) -> Result<Envelope, ParseError> {
        let at = self.loc();
        let name = self.ident()?;
        self.sym('(')?;
        let amp = self.expr(0)?;
        self.sym(',')?;
        let duration = self.duration()?;
        let mut rest = Vec::new();
        while self.peek() == &Tok::Sym(',') {
            self.pos += 1;
            rest.push(self.expr(0)?);
        }
        self.sym(')')?;
        let want = match name.as_str() {
            "constant" => 0,
            "gaussian" => 1,
            "gaussian_square" | "drag" | "sine" => 2,
            other => {
                return Err(ParseError {
                    file: self.file.to_string(),
                    line: at.line,
                    col: at.col,
                    message: format!(
                    "unknown envelope `{other}` (constant, gaussian, gaussian_square, drag, sine)"
                ),
                })
            }
        };
        if rest.len() != want {
            return Err(ParseError {
                file: self.file.to_string(),
                line: at.line,
                col: at.col,
                message: format!(
                    "`{name}` takes {} arguments, got {}",
                    want + 2,
                    rest.len() + 2
                ),
            });
        }
        let e = match name.as_str() {
            "constant" => Envelope::Constant { amp, duration },
            "gaussian" => Envelope::Gaussian {
                amp,
                duration,
                sigma: rest[0],
            },
            "gaussian_square" => Envelope::GaussianSquare {
                amp,
                duration,
                sigma: rest[0],
                width: rest[1],
            },
            "drag" => Envelope::Drag {
                amp,
                duration,
                sigma: rest[0],
                beta: rest[1],
            },
            _ => Envelope::Sine {
                amp,
                duration,
                freq: rest[0],
                phase: rest[1],
            },
        };
        e.validate().map_err(|m| ParseError {
            file: self.file.to_string(),
            line: at.line,
            col: at.col,
            message: format!("{name}: {m}"),
        })?;
        Ok(e)
    }
    // Long by design: one arm per statement of the transform language.
    fn stmt(&mut self) -> Result<(Stmt, Loc), ParseError> {
        let at = self.loc();
        let word = self.ident()?;
        let s = match word.as_str() {
            "frame" => {
                let name = self.ident()?;
                self.sym('=')?;
                let how = self.ident()?;
                self.sym('(')?;
                let s = match how.as_str() {
                    "newframe" => {
                        let port = self.ident()?;
                        self.sym(',')?;
                        let freq = self.expr(0)?;
                        self.sym(',')?;
                        let phase = self.expr(0)?;
                        Stmt::NewFrame {
                            name,
                            port,
                            freq,
                            phase,
                        }
                    }
                    "copyframe" => Stmt::CopyFrame {
                        name,
                        src: self.ident()?,
                    },
                    other => {
                        return self.err(format!("expected newframe or copyframe, found `{other}`"))
                    }
                };
                self.sym(')')?;
                s
            }
            "play" => {
                self.sym('(')?;
                let frame = self.ident()?;
                self.sym(',')?;
                let envelope = self.envelope()?;
                self.sym(')')?;
                Stmt::Play { frame, envelope }
            }
            "delay" => {
                self.sym('[')?;
                let duration = self.duration()?;
                self.sym(']')?;
                Stmt::Delay {
                    duration,
                    frames: self.frame_list()?,
                }
            }
            "barrier" => Stmt::Barrier {
                frames: self.frame_list()?,
            },
            "capture" => {
                self.sym('(')?;
                let frame = self.ident()?;
                self.sym(',')?;
                let duration = self.duration()?;
                self.sym(')')?;
                Stmt::Capture { frame, duration }
            }
            "shift_phase" | "set_phase" | "shift_frequency" | "set_frequency" => {
                self.sym('(')?;
                let frame = self.ident()?;
                self.sym(',')?;
                let v = self.expr(0)?;
                self.sym(')')?;
                match word.as_str() {
                    "shift_phase" => Stmt::ShiftPhase { frame, by: v },
                    "set_phase" => Stmt::SetPhase { frame, to: v },
                    "shift_frequency" => Stmt::ShiftFrequency { frame, by: v },
                    _ => Stmt::SetFrequency { frame, to: v },
                }
            }
            other => {
                return Err(ParseError {
                    file: self.file.to_string(),
                    line: at.line,
                    col: at.col,
                    message: format!("unknown instruction `{other}`"),
                })
            }
        };
        self.sym(';')?;
        Ok((s, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_instruction() {
        let p = Program::parse(
            "frame d0 = newframe(q0, 5.1e9, pi/2);\nframe d1 = copyframe(d0);\n\
             play(d0, gaussian(0.5, 160, 40)); delay[100] d0, d1;\n\
             shift_phase(d0, -pi); set_phase(d1, 0); shift_frequency(d0, -1e6);\n\
             set_frequency(d1, 5_200_000_000); capture(d1, 200); barrier d0, d1;",
            "t.phi",
        )
        .unwrap();
        assert_eq!(p.stmts.len(), 10);
        assert_eq!(p.stmts[2].1, Loc { line: 3, col: 1 });
        assert!(matches!(&p.stmts[0].0, Stmt::NewFrame { freq, .. } if *freq == 5.1e9));
    }

    #[test]
    fn errors_name_their_place() {
        for (text, want) in [
            (
                "play(d0, gauss(1, 2));",
                "t.phi:1:10: unknown envelope `gauss`",
            ),
            (
                "delay[1.5] d0;",
                "t.phi:1:7: expected a duration in whole nanoseconds",
            ),
            (
                "play(d0, gaussian(0.1, 10, 0));",
                "t.phi:1:10: gaussian: sigma must be above 0",
            ),
            (
                "frame x = newframe(q0, 1, 0)",
                "t.phi:1:29: expected `;`, found the end",
            ),
            ("jump d0;", "t.phi:1:1: unknown instruction `jump`"),
            ("shift_phase(d0, 1/0);", "t.phi:1:19: division by zero"),
            (
                "play(d0, drag(0.1, 10, 2));",
                "t.phi:1:10: `drag` takes 4 arguments, got 3",
            ),
            ("set_phase(d0, 1) ?", "t.phi:1:18: unexpected character '?'"),
        ] {
            let e = Program::parse(text, "t.phi").unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}\n  should start with\n{want}");
        }
    }
}
