//! Hostile transform text: deeply nested number expressions are refused with their place, not
//! by overflowing the stack (these run on a test thread's 2 MiB stack).

use xdv_phi::program::MAX_EXPR_DEPTH;
use xdv_phi::Program;

const HEAD: &str = "frame d0 = newframe(q0, 5e9, 0);\nshift_phase(d0, ";

fn phase(expr: &str) -> Result<Program, xdv_phi::ParseError> {
    Program::parse(&format!("{HEAD}{expr});\n"), "deep.phi")
}

#[test]
fn deep_expressions_are_refused_with_their_place() {
    let n = 30_000;
    let want = |col: usize| {
        format!("deep.phi:2:{col}: expression nested deeper than {MAX_EXPR_DEPTH} levels")
    };
    // `shift_phase(d0, ` is 16 columns: the expression starts at column 17, and its 65th level
    // (the 65th `(` or `-`) is 64 columns on.
    for expr in [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}1{}", "-(".repeat(n / 2), ")".repeat(n / 2)),
        format!("2*{}1", "-".repeat(n)),
    ] {
        let col = 17 + 64 + if expr.starts_with("2*") { 2 } else { 0 };
        assert_eq!(phase(&expr).unwrap_err().to_string(), want(col));
    }
    // Every place an expression is read is bounded: newframe, envelopes.
    let deep = format!("{}1{}", "(".repeat(n), ")".repeat(n));
    for text in [
        format!("frame d0 = newframe(q0, {deep}, 0);"),
        format!("frame d0 = newframe(q0, 5e9, 0); play(d0, constant({deep}, 10));"),
        format!("frame d0 = newframe(q0, 5e9, 0); play(d0, gaussian(0.1, 10, {deep}));"),
        format!("frame d0 = newframe(q0, 5e9, 0); set_frequency(d0, {deep});"),
    ] {
        let e = Program::parse(&text, "t.phi").unwrap_err();
        assert!(e.message.contains("nested deeper than 64 levels"), "{e}");
    }
}

#[test]
fn expressions_up_to_the_limit_are_read() {
    // 63 levels of parentheses and signs around a number: 64 levels.
    let ok = format!("{}pi{}", "-(".repeat(31), ")".repeat(31));
    let ok = format!("-{ok}");
    assert!(phase(&ok).is_ok(), "{:?}", phase(&ok));
    assert!(phase(&format!("({ok})")).is_err());
    // Binary operators do not nest: a long sum is fine.
    let sum = format!("0{}", "+0.001".repeat(20_000));
    assert!(phase(&sum).is_ok());
}
