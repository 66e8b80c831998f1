//! Parsing the macros' arguments: `#[timed]` / `#[timed("name")]`, and
//! `count!(name[, delta])` / `gauge!(name, value)`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprLit, Lit, LitStr, Token};

/// The arguments of `#[timed]`.
pub(crate) struct TimedArgs {
    /// `#[timed("name")]`; `None` for a bare `#[timed]`.
    pub(crate) name: Option<LitStr>,
}

const TIMED_USAGE: &str = "`#[timed]` takes the metric name as a string literal, \
     as in `#[timed(\"db.query\")]`, or nothing to name the metric after the module and \
     function";

impl Parse for TimedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<TimedArgs> {
        if input.is_empty() {
            return Ok(TimedArgs { name: None });
        }
        if !input.peek(LitStr) {
            let found: TokenStream = input.parse()?;
            return Err(syn::Error::new_spanned(found, TIMED_USAGE));
        }
        let lit: LitStr = input.parse()?;
        end_of_arguments(input, "`#[timed]` takes only the metric name")?;
        Ok(TimedArgs { name: Some(lit) })
    }
}

/// Which macro is being parsed, for the messages.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Count,
    Gauge,
}

impl Kind {
    fn usage(self) -> &'static str {
        match self {
            Kind::Count => "`count!` takes a metric name and an integer delta, as in `count!(\"requests\", 1)`; the delta defaults to 1",
            Kind::Gauge => "`gauge!` takes a metric name and a value, as in `gauge!(\"queue.depth\", 12)`",
        }
    }
}

/// The metric name of `count!` or `gauge!`.
pub(crate) enum Name {
    /// A string literal, to be checked at compile time.
    Literal(LitStr),
    /// Any other expression (`&str`, `String`, ...), checked at run time.
    Expr(Expr),
}

/// The arguments of `count!` and `gauge!`.
pub(crate) struct MetricArgs {
    pub(crate) name: Name,
    /// The delta or value; `None` if left out (only `count!` allows that).
    pub(crate) value: Option<Expr>,
}

impl MetricArgs {
    pub(crate) fn parse(input: ParseStream<'_>, kind: Kind) -> syn::Result<MetricArgs> {
        if input.is_empty() {
            return Err(syn::Error::new(Span::call_site(), kind.usage()));
        }
        let name: Expr = input.parse()?;
        let name = match literal(&name) {
            Some(Lit::Str(lit)) => Name::Literal(lit.clone()),
            Some(other) => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("the metric name must be a string; {}", kind.usage()),
                ))
            }
            None => Name::Expr(name),
        };
        let mut value = None;
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                value = Some(input.parse::<Expr>()?);
            }
        }
        end_of_arguments(input, kind.usage())?;
        if value.is_none() {
            if let Kind::Gauge = kind {
                return Err(syn::Error::new(
                    input.span(),
                    format!("missing value: {}", kind.usage()),
                ));
            }
        }
        Ok(MetricArgs { name, value })
    }
}

/// Takes an optional trailing comma; anything after it is an error spanned
/// on the extra tokens, saying `usage`.
fn end_of_arguments(input: ParseStream<'_>, usage: &str) -> syn::Result<()> {
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
    }
    if input.is_empty() {
        return Ok(());
    }
    let extra: TokenStream = input.parse()?;
    Err(syn::Error::new_spanned(
        extra,
        format!("unexpected argument: {usage}"),
    ))
}

/// The literal an expression is, looking through parentheses and the
/// invisible groups `macro_rules!` wraps `$name:expr` in.
fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { attrs, lit }) if attrs.is_empty() => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        Expr::Paren(paren) => literal(&paren.expr),
        _ => None,
    }
}
