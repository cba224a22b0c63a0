//! The OpenQASM 2.0 parser and gate inliner.

use super::lexer::{lex, Tok, Token};
use super::{QasmError, INLINE_STEPS_PER_OP, MAX_EXPR_DEPTH, MAX_INLINE_DEPTH, QELIB1};
use crate::circuit::{Circuit, Op, Register};
use std::cell::Cell;
use std::collections::BTreeMap;

/// Most operations a program may expand to, by default (see [`crate::qasm::parse_limited`]).
pub(crate) const MAX_OPS: usize = 5_000_000;
/// The label of the built-in library.
const LIBRARY: &str = "<built-in qelib1.inc>";

/// Names OpenQASM 3's stdgates.inc has beyond qelib1.inc.
const STDGATES_EXTRA: &str =
    "gate phase(lambda) q { p(lambda) q; }\ngate cphase(lambda) a,b { cp(lambda) a,b; }\n";

/// Most qubits a program may declare.
const MAX_QUBITS: usize = 64;

#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Param(String),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Func(String, Box<Expr>),
}

#[derive(Debug, Clone)]
enum GateStmt {
    Call {
        name: String,
        params: Vec<Expr>,
        args: Vec<String>,
        line: usize,
        col: usize,
    },
    Barrier,
}

#[derive(Debug, Clone)]
struct GateDef {
    params: Vec<String>,
    qargs: Vec<String>,
    body: Vec<GateStmt>,
    /// Defined by the built-in library (so its meaning is known exactly).
    builtin: bool,
}

/// A quantum or classical argument: a whole register or one element.
#[derive(Debug, Clone)]
struct Arg {
    reg: String,
    index: Option<u64>,
    line: usize,
    col: usize,
}

pub(crate) struct Parser {
    /// The program declared `OPENQASM 3`: `qubit`/`bit` declarations, `stdgates.inc` and
    /// `c = measure q;` are read too.
    v3: bool,
    toks: Vec<Token>,
    pos: usize,
    file: String,
    gates: BTreeMap<String, GateDef>,
    circuit: Circuit,
    /// Most operations the program may expand to; checked while gates are inlined, so a short
    /// program of nested definitions cannot grow without bound before it is refused.
    max_ops: usize,
    /// Gate applications inlined so far, against `max_ops × INLINE_STEPS_PER_OP`.
    steps: Cell<usize>,
    /// The libraries already included (a second include of one adds nothing, so it is not
    /// parsed again).
    included: Vec<String>,
}

impl Parser {
    pub(crate) fn new(text: &str, file: &str, max_ops: usize) -> Result<Self, QasmError> {
        Ok(Self {
            v3: false,
            toks: lex(text, file)?,
            pos: 0,
            file: file.to_string(),
            gates: BTreeMap::new(),
            circuit: Circuit::default(),
            max_ops,
            steps: Cell::new(0),
            included: Vec::new(),
        })
    }

    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, line: usize, col: usize, message: impl Into<String>) -> QasmError {
        QasmError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    fn err(&self, message: impl Into<String>) -> QasmError {
        let t = self.peek();
        self.err_at(t.line, t.col, message)
    }

    fn describe(t: &Tok) -> String {
        match t {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Real(r) => format!("`{r}`"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Sym(s) => format!("`{s}`"),
            Tok::Eof => "the end of the file".into(),
        }
    }

    fn expect_sym(&mut self, sym: &'static str) -> Result<(), QasmError> {
        if self.peek().tok == Tok::Sym(sym) {
            self.next();
            Ok(())
        } else {
            Err(self.err(format!(
                "expected `{sym}`, found {}",
                Self::describe(&self.peek().tok)
            )))
        }
    }

    fn eat_sym(&mut self, sym: &'static str) -> bool {
        if self.peek().tok == Tok::Sym(sym) {
            self.next();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<(String, usize, usize), QasmError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(s) => Ok((s, t.line, t.col)),
            other => Err(self.err_at(
                t.line,
                t.col,
                format!("expected a name, found {}", Self::describe(&other)),
            )),
        }
    }

    fn int(&mut self) -> Result<u64, QasmError> {
        let t = self.next();
        match t.tok {
            Tok::Int(i) => Ok(i),
            other => Err(self.err_at(
                t.line,
                t.col,
                format!("expected an integer, found {}", Self::describe(&other)),
            )),
        }
    }

    pub(crate) fn program(mut self) -> Result<Circuit, QasmError> {
        if matches!(&self.peek().tok, Tok::Ident(s) if s == "OPENQASM") {
            let t = self.next();
            let v = self.next();
            let version = match v.tok {
                Tok::Real(r) if (2.0..3.0).contains(&r) => Some(false),
                Tok::Real(r) if (3.0..4.0).contains(&r) => Some(true),
                Tok::Int(2) => Some(false),
                Tok::Int(3) => Some(true),
                _ => None,
            };
            let Some(v3) = version else {
                return Err(self.err_at(
                    t.line,
                    t.col,
                    format!("unsupported version {}: this front end reads OpenQASM 2.0 and the stdgates subset of 3", Self::describe(&v.tok)),
                ));
            };
            self.v3 = v3;
            self.expect_sym(";")?;
        }
        while self.peek().tok != Tok::Eof {
            self.statement()?;
        }
        Ok(self.circuit)
    }

    // Long by design: one arm per OpenQASM statement form, as the grammar lists them.
    fn statement(&mut self) -> Result<(), QasmError> {
        let t = self.peek().clone();
        let Tok::Ident(word) = &t.tok else {
            return Err(self.err(format!(
                "expected a statement, found {}",
                Self::describe(&t.tok)
            )));
        };
        match word.as_str() {
            "include" => {
                self.next();
                let f = self.next();
                let Tok::Str(name) = f.tok else {
                    return Err(self.err_at(f.line, f.col, "expected a file name in quotes"));
                };
                self.expect_sym(";")?;
                let std = self.v3 && name == "stdgates.inc";
                if name != "qelib1.inc" && !std {
                    return Err(self.err_at(
                        f.line,
                        f.col,
                        format!("include \"{name}\": only \"qelib1.inc\" (and, in OpenQASM 3, \"stdgates.inc\") is available (built in)"),
                    ));
                }
                // Library gates never replace a definition already made, so including a library
                // again changes nothing; skipping it keeps thousands of includes cheap.
                if self.included.contains(&name) {
                    return Ok(());
                }
                self.included.push(name);
                let text = if std { format!("{QELIB1}\n{STDGATES_EXTRA}") } else { QELIB1.to_string() };
                let mut lib = Parser::new(&text, LIBRARY, self.max_ops)?;
                while lib.peek().tok != Tok::Eof {
                    lib.statement()?;
                }
                for (k, v) in lib.gates {
                    self.gates.entry(k).or_insert(v);
                }
                Ok(())
            }
            "qreg" | "creg" | "qubit" | "bit" if self.v3 || matches!(word.as_str(), "qreg" | "creg") => {
                let quantum = matches!(word.as_str(), "qreg" | "qubit");
                let v3_style = matches!(word.as_str(), "qubit" | "bit");
                self.next();
                // OpenQASM 3: `qubit[n] name;` or `qubit name;`. OpenQASM 2: `qreg name[n];`.
                let mut size = 1;
                if v3_style && self.eat_sym("[") {
                    size = self.int()?;
                    self.expect_sym("]")?;
                }
                let (name, line, col) = self.ident()?;
                if !v3_style {
                    self.expect_sym("[")?;
                    size = self.int()?;
                    self.expect_sym("]")?;
                }
                self.expect_sym(";")?;
                if size == 0 {
                    return Err(self.err_at(line, col, format!("register {name} has size 0")));
                }
                if self
                    .circuit
                    .qregs
                    .iter()
                    .chain(&self.circuit.cregs)
                    .any(|r| r.name == name)
                {
                    return Err(self.err_at(
                        line,
                        col,
                        format!("register {name} is declared twice"),
                    ));
                }
                let regs = if quantum {
                    &mut self.circuit.qregs
                } else {
                    &mut self.circuit.cregs
                };
                let offset: usize = regs.iter().map(|r| r.size).sum();
                regs.push(Register {
                    name,
                    offset,
                    size: size as usize,
                });
                if self.circuit.num_qubits() > MAX_QUBITS {
                    return Err(self.err_at(line, col, format!("more than {MAX_QUBITS} qubits")));
                }
                Ok(())
            }
            "qubit" | "bit" => Err(self.err(format!("`{word}` declarations are OpenQASM 3: start the program with `OPENQASM 3.0;`, or use `qreg`/`creg`"))),
            "gate" => self.gate_def(),
            "opaque" => Err(self.err(
                "opaque gates are not supported: xdv needs every gate's definition to simulate it",
            )),
            "measure" => {
                self.next();
                let q = self.arg()?;
                self.expect_sym("->")?;
                let c = self.arg()?;
                self.expect_sym(";")?;
                let ops = self.measure(&q, &c)?;
                self.push(ops)
            }
            "reset" => {
                self.next();
                let q = self.arg()?;
                self.expect_sym(";")?;
                let ops = self
                    .qubits(&q)?
                    .into_iter()
                    .map(|q| Op::Reset { q })
                    .collect();
                self.push(ops)
            }
            "barrier" => {
                self.next();
                let args = self.args()?;
                self.expect_sym(";")?;
                let mut qubits = Vec::new();
                for a in &args {
                    qubits.extend(self.qubits(a)?);
                }
                self.push(vec![Op::Barrier { qubits }])
            }
            "if" => {
                self.next();
                self.expect_sym("(")?;
                let (reg, line, col) = self.ident()?;
                self.expect_sym("==")?;
                let value = self.int()?;
                self.expect_sym(")")?;
                let Some(r) = self.circuit.cregs.iter().find(|r| r.name == reg).cloned() else {
                    return Err(self.err_at(
                        line,
                        col,
                        format!("classical register {reg} is not declared"),
                    ));
                };
                // Refused before descending, so a chain `if (…) if (…) …` cannot recurse.
                if matches!(&self.peek().tok, Tok::Ident(w) if w == "if") {
                    return Err(self.err_at(line, col, "an if statement cannot contain another"));
                }
                let start = self.circuit.ops.len();
                self.statement()?;
                let inner: Vec<Op> = self.circuit.ops.drain(start..).collect();
                for op in inner {
                    if matches!(op, Op::If { .. }) {
                        return Err(self.err_at(
                            line,
                            col,
                            "an if statement cannot contain another",
                        ));
                    }
                    self.circuit.ops.push(Op::If {
                        offset: r.offset,
                        size: r.size,
                        value,
                        op: Box::new(op),
                    });
                }
                Ok(())
            }
            _ if self.v3 && self.is_measure_assignment() => {
                // OpenQASM 3: `c = measure q;` or `c[i] = measure q[j];`.
                let c = self.arg()?;
                self.expect_sym("=")?;
                let (m, line, col) = self.ident()?;
                if m != "measure" {
                    return Err(self.err_at(line, col, "only `bits = measure qubits;` assignments are supported"));
                }
                let q = self.arg()?;
                self.expect_sym(";")?;
                let ops = self.measure(&q, &c)?;
                self.push(ops)
            }
            _ => {
                let (name, line, col) = self.ident()?;
                let params = if self.eat_sym("(") {
                    self.exprs(")")?
                } else {
                    Vec::new()
                };
                let args = self.args()?;
                self.expect_sym(";")?;
                let env = BTreeMap::new();
                let values = params
                    .iter()
                    .map(|e| self.eval(e, &env, line, col))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut lists = Vec::with_capacity(args.len());
                for a in &args {
                    lists.push(self.qubits(a)?);
                }
                // Broadcast: whole registers of one size, single qubits repeated.
                let n = lists
                    .iter()
                    .map(Vec::len)
                    .filter(|&l| l > 1)
                    .max()
                    .unwrap_or(1);
                if lists.iter().any(|l| l.len() != 1 && l.len() != n) {
                    return Err(self.err_at(
                        line,
                        col,
                        format!(
                            "{name}: registers of different sizes cannot be broadcast together"
                        ),
                    ));
                }
                let mut ops = Vec::new();
                for i in 0..n {
                    let qs: Vec<usize> = lists
                        .iter()
                        .map(|l| if l.len() == 1 { l[0] } else { l[i] })
                        .collect();
                    self.apply(&name, &values, &qs, line, col, 0, &mut ops)?;
                }
                self.push(ops)
            }
        }
    }

    /// `true` when the statement ahead is `name = …` or `name[i] = …`.
    fn is_measure_assignment(&self) -> bool {
        let at = |k: usize| self.toks.get(self.pos + k).map(|t| &t.tok);
        matches!(at(1), Some(Tok::Sym("=")))
            || (matches!(at(1), Some(Tok::Sym("["))) && matches!(at(4), Some(Tok::Sym("="))))
    }

    fn push(&mut self, ops: Vec<Op>) -> Result<(), QasmError> {
        if self.circuit.ops.len() + ops.len() > self.max_ops {
            return Err(self.err(format!(
                "the program expands to more than {} operations",
                self.max_ops
            )));
        }
        self.circuit.ops.extend(ops);
        Ok(())
    }

    fn gate_def(&mut self) -> Result<(), QasmError> {
        self.next();
        let (name, line, col) = self.ident()?;
        if matches!(name.as_str(), "U" | "CX") || self.gates.contains_key(&name) {
            return Err(self.err_at(line, col, format!("gate {name} is already defined")));
        }
        let mut params = Vec::new();
        if self.eat_sym("(") && !self.eat_sym(")") {
            loop {
                params.push(self.ident()?.0);
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",")?;
            }
        }
        let mut qargs = vec![self.ident()?.0];
        while self.eat_sym(",") {
            qargs.push(self.ident()?.0);
        }
        self.expect_sym("{")?;
        let mut body = Vec::new();
        while !self.eat_sym("}") {
            let (word, l, c) = self.ident()?;
            if word == "barrier" {
                while !self.eat_sym(";") {
                    self.next();
                    if self.peek().tok == Tok::Eof {
                        return Err(self.err("unterminated barrier"));
                    }
                }
                body.push(GateStmt::Barrier);
                continue;
            }
            let ps = if self.eat_sym("(") {
                self.exprs(")")?
            } else {
                Vec::new()
            };
            let mut args = vec![self.ident()?.0];
            while self.eat_sym(",") {
                args.push(self.ident()?.0);
            }
            self.expect_sym(";")?;
            for a in &args {
                if !qargs.contains(a) {
                    return Err(self.err_at(
                        l,
                        c,
                        format!("in gate {name}: {a} is not one of its qubit arguments"),
                    ));
                }
            }
            body.push(GateStmt::Call {
                name: word,
                params: ps,
                args,
                line: l,
                col: c,
            });
        }
        self.gates.insert(
            name,
            GateDef {
                params,
                qargs,
                body,
                builtin: self.file == LIBRARY,
            },
        );
        Ok(())
    }

    /// Lowers one gate application on concrete qubits and parameter values.
    // Long by design: one arm per gate of the standard library, as qelib1.inc lists them.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        name: &str,
        params: &[f64],
        qs: &[usize],
        line: usize,
        col: usize,
        depth: usize,
        out: &mut Vec<Op>,
    ) -> Result<(), QasmError> {
        if depth > MAX_INLINE_DEPTH {
            return Err(self.err_at(
                line,
                col,
                format!("gate {name}: definitions nest deeper than {MAX_INLINE_DEPTH}"),
            ));
        }
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        let max_steps = self.max_ops.saturating_mul(INLINE_STEPS_PER_OP);
        if steps > max_steps {
            return Err(self.err_at(
                line,
                col,
                format!(
                    "gate {name}: inlining the program's gates takes more than {max_steps} gate applications ({INLINE_STEPS_PER_OP} per operation allowed)"
                ),
            ));
        }
        if self.circuit.ops.len() + out.len() >= self.max_ops {
            return Err(self.err_at(
                line,
                col,
                format!(
                    "gate {name}: the program expands to more than {} operations",
                    self.max_ops
                ),
            ));
        }
        let arity = |want_p: usize, want_q: usize| -> Result<(), QasmError> {
            if params.len() != want_p || qs.len() != want_q {
                return Err(self.err_at(
                    line,
                    col,
                    format!("gate {name} takes {want_p} parameter(s) and {want_q} qubit(s), got {} and {}", params.len(), qs.len()),
                ));
            }
            Ok(())
        };
        for (i, a) in qs.iter().enumerate() {
            if qs[..i].contains(a) {
                return Err(self.err_at(
                    line,
                    col,
                    format!("gate {name}: qubit {a} is used twice"),
                ));
            }
        }
        match name {
            "U" => {
                arity(3, 1)?;
                out.push(Op::U {
                    q: qs[0],
                    theta: params[0],
                    phi: params[1],
                    lambda: params[2],
                });
            }
            "CX" => {
                arity(0, 2)?;
                out.push(Op::Cx { c: qs[0], t: qs[1] });
            }
            _ => {
                let Some(def) = self.gates.get(name) else {
                    // The hint only helps a program that included no library.
                    let hint = if self.included.is_empty() {
                        " (is `include \"qelib1.inc\";` missing?)"
                    } else {
                        ""
                    };
                    return Err(self.err_at(line, col, format!("unknown gate {name}{hint}")));
                };
                arity(def.params.len(), def.qargs.len())?;
                // Library gates with a native kernel are kept whole: their definitions equal these
                // matrices exactly (not only up to a global phase).
                if def.builtin {
                    match name {
                        "cu1" | "cp" => {
                            out.push(Op::CPhase {
                                a: qs[0],
                                b: qs[1],
                                lambda: params[0],
                            });
                            return Ok(());
                        }
                        "cz" => {
                            out.push(Op::CPhase {
                                a: qs[0],
                                b: qs[1],
                                lambda: std::f64::consts::PI,
                            });
                            return Ok(());
                        }
                        "swap" => {
                            out.push(Op::Swap { a: qs[0], b: qs[1] });
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                let env: BTreeMap<&str, f64> = def
                    .params
                    .iter()
                    .map(String::as_str)
                    .zip(params.iter().copied())
                    .collect();
                for stmt in &def.body {
                    if let GateStmt::Call {
                        name: inner,
                        params: ps,
                        args,
                        line: l,
                        col: c,
                    } = stmt
                    {
                        let values = ps
                            .iter()
                            .map(|e| self.eval(e, &env, *l, *c))
                            .collect::<Result<Vec<_>, _>>()?;
                        let inner_qs: Vec<usize> = args
                            .iter()
                            .map(|a| {
                                qs[def
                                    .qargs
                                    .iter()
                                    .position(|q| q == a)
                                    .expect("checked at definition")]
                            })
                            .collect();
                        self.apply(inner, &values, &inner_qs, line, col, depth + 1, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn measure(&self, q: &Arg, c: &Arg) -> Result<Vec<Op>, QasmError> {
        let qs = self.qubits(q)?;
        let cs = self.clbits(c)?;
        if qs.len() != cs.len() {
            return Err(self.err_at(
                q.line,
                q.col,
                format!("measure: {} qubit(s) into {} bit(s)", qs.len(), cs.len()),
            ));
        }
        Ok(qs
            .into_iter()
            .zip(cs)
            .map(|(q, c)| Op::Measure { q, c })
            .collect())
    }

    fn resolve(&self, a: &Arg, regs: &[Register], kind: &str) -> Result<Vec<usize>, QasmError> {
        let Some(r) = regs.iter().find(|r| r.name == a.reg) else {
            return Err(self.err_at(
                a.line,
                a.col,
                format!("{kind} register {} is not declared", a.reg),
            ));
        };
        match a.index {
            None => Ok((r.offset..r.offset + r.size).collect()),
            Some(i) if (i as usize) < r.size => Ok(vec![r.offset + i as usize]),
            Some(i) => Err(self.err_at(
                a.line,
                a.col,
                format!("index {i} is out of range for {}[{}]", r.name, r.size),
            )),
        }
    }

    fn qubits(&self, a: &Arg) -> Result<Vec<usize>, QasmError> {
        self.resolve(a, &self.circuit.qregs, "quantum")
    }

    fn clbits(&self, a: &Arg) -> Result<Vec<usize>, QasmError> {
        self.resolve(a, &self.circuit.cregs, "classical")
    }

    fn arg(&mut self) -> Result<Arg, QasmError> {
        let (reg, line, col) = self.ident()?;
        let index = if self.eat_sym("[") {
            let i = self.int()?;
            self.expect_sym("]")?;
            Some(i)
        } else {
            None
        };
        Ok(Arg {
            reg,
            index,
            line,
            col,
        })
    }

    fn args(&mut self) -> Result<Vec<Arg>, QasmError> {
        let mut v = vec![self.arg()?];
        while self.eat_sym(",") {
            v.push(self.arg()?);
        }
        Ok(v)
    }

    fn exprs(&mut self, close: &'static str) -> Result<Vec<Expr>, QasmError> {
        let mut v = Vec::new();
        if self.eat_sym(close) {
            return Ok(v);
        }
        loop {
            v.push(self.expr(0, 0)?.0);
            if self.eat_sym(close) {
                return Ok(v);
            }
            self.expect_sym(",")?;
        }
    }

    /// The error for an expression deeper than [`MAX_EXPR_DEPTH`], at the current token.
    fn too_deep(&self) -> QasmError {
        self.err(format!(
            "expression nested deeper than {MAX_EXPR_DEPTH} levels"
        ))
    }

    /// Precedence climbing: `+ -` < `* /` < `^` (right associative) < unary minus.
    ///
    /// `depth` is the number of levels above this expression (see [`MAX_EXPR_DEPTH`]); the
    /// result comes with its own height, and `depth + height` never passes the limit.
    fn expr(&mut self, min: u8, depth: usize) -> Result<(Expr, usize), QasmError> {
        let (mut lhs, mut height) = self.unary(depth)?;
        loop {
            let (op, prec, right) = match self.peek().tok {
                Tok::Sym("+") => ('+', 1, false),
                Tok::Sym("-") => ('-', 1, false),
                Tok::Sym("*") => ('*', 2, false),
                Tok::Sym("/") => ('/', 2, false),
                Tok::Sym("^") => ('^', 3, true),
                _ => return Ok((lhs, height)),
            };
            if prec < min {
                return Ok((lhs, height));
            }
            // The new node sits one level above its left operand, which may already be a long
            // left-leaning chain built by this loop.
            if depth + height + 1 > MAX_EXPR_DEPTH {
                return Err(self.too_deep());
            }
            self.next();
            let (rhs, h) = self.expr(if right { prec } else { prec + 1 }, depth + 1)?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
            height = 1 + height.max(h);
        }
    }

    fn unary(&mut self, depth: usize) -> Result<(Expr, usize), QasmError> {
        // Even a number or a name is one level.
        if depth + 1 > MAX_EXPR_DEPTH {
            return Err(self.too_deep());
        }
        if self.eat_sym("-") {
            let (e, h) = self.unary(depth + 1)?;
            return Ok((Expr::Neg(Box::new(e)), h + 1));
        }
        if self.eat_sym("+") {
            let (e, h) = self.unary(depth + 1)?;
            return Ok((e, h + 1));
        }
        let t = self.next();
        match t.tok {
            Tok::Int(i) => Ok((Expr::Num(i as f64), 1)),
            Tok::Real(r) => Ok((Expr::Num(r), 1)),
            Tok::Sym("(") => {
                let (e, h) = self.expr(0, depth + 1)?;
                self.expect_sym(")")?;
                Ok((e, h + 1))
            }
            Tok::Ident(name) if name == "pi" => Ok((Expr::Num(std::f64::consts::PI), 1)),
            Tok::Ident(name)
                if matches!(name.as_str(), "sin" | "cos" | "tan" | "exp" | "ln" | "sqrt") =>
            {
                self.expect_sym("(")?;
                let (e, h) = self.expr(0, depth + 1)?;
                self.expect_sym(")")?;
                Ok((Expr::Func(name, Box::new(e)), h + 1))
            }
            Tok::Ident(name) => Ok((Expr::Param(name), 1)),
            other => Err(self.err_at(
                t.line,
                t.col,
                format!("expected an expression, found {}", Self::describe(&other)),
            )),
        }
    }

    fn eval(
        &self,
        e: &Expr,
        env: &BTreeMap<&str, f64>,
        line: usize,
        col: usize,
    ) -> Result<f64, QasmError> {
        let v = match e {
            Expr::Num(n) => *n,
            Expr::Param(p) => *env
                .get(p.as_str())
                .ok_or_else(|| self.err_at(line, col, format!("unknown parameter {p}")))?,
            Expr::Neg(x) => -self.eval(x, env, line, col)?,
            Expr::Bin(op, a, b) => {
                let (a, b) = (self.eval(a, env, line, col)?, self.eval(b, env, line, col)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Expr::Func(f, x) => {
                let x = self.eval(x, env, line, col)?;
                match f.as_str() {
                    "sin" => x.sin(),
                    "cos" => x.cos(),
                    "tan" => x.tan(),
                    "exp" => x.exp(),
                    "ln" => x.ln(),
                    _ => x.sqrt(),
                }
            }
        };
        if !v.is_finite() {
            return Err(self.err_at(line, col, format!("a parameter evaluates to {v}")));
        }
        Ok(v)
    }
}
