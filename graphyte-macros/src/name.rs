//! Compile-time checks of literal metric names, with the runtime's own rules
//! and the runtime's own words.

use syn::LitStr;

// The runtime's own rules (the graphyte-validate crate, which graphyte uses too).
use graphyte_validate as validate;
use validate::Invalid;

/// Checks a literal name (path and inline `;k=v` tags). The error, spanned
/// on the literal, reads exactly like the runtime's `graphyte::Error` for
/// the same name.
pub(crate) fn check(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    validate::check_name(&name).map_err(|e| syn::Error::new(lit.span(), message(&name, e)))
}

/// The `Display` text of `graphyte::Error::InvalidName` / `InvalidTag`.
fn message(name: &str, e: Invalid<'_>) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = validate::write_message(&mut text, name, e);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(name: &str) -> Result<(), String> {
        check(&LitStr::new(name, proc_macro2::Span::call_site())).map_err(|e| e.to_string())
    }

    #[test]
    fn valid_names_pass() {
        for name in ["requests", "db.query;env=prod", "a.b_c-d.e;k=v;k2=v2"] {
            assert_eq!(check_str(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!(
            check_str("bad name"),
            Err("invalid metric name \"bad name\": must not contain whitespace".into())
        );
        assert_eq!(
            check_str("a..b"),
            Err("invalid metric name \"a..b\": must not contain an empty segment ('..', or a leading or trailing '.')".into())
        );
        assert_eq!(
            check_str("x;env="),
            Err(
                "invalid tag \"env\"=\"\" on metric \"x;env=\": tag value must not be empty".into()
            )
        );
        assert_eq!(
            check_str(""),
            Err("invalid metric name \"\": must not be empty".into())
        );
    }
}
