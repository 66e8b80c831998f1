//! What the macros expand to. Every path is fully qualified
//! (`::graphyte::__private::...`, `::core::...`) so that the user's own
//! imports, names or a local `mod graphyte` cannot change what it means;
//! generated locals use mixed-site hygiene and cannot clash with the user's.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::token::Brace;
use syn::{
    braced, Attribute, Block, Expr, ExprAsync, ReturnType, Signature, Stmt, Token, Type,
    TypeParamBound, Visibility,
};

use crate::args::{Kind, MetricArgs, Name, TimedArgs};
use crate::name;

/// `count!(name[, delta])`.
pub(crate) fn count(input: TokenStream) -> TokenStream {
    metric(input, Kind::Count)
}

/// `gauge!(name, value)`.
pub(crate) fn gauge(input: TokenStream) -> TokenStream {
    metric(input, Kind::Gauge)
}

fn metric(input: TokenStream, kind: Kind) -> TokenStream {
    let args = match (|input: ParseStream<'_>| MetricArgs::parse(input, kind)).parse2(input) {
        Ok(args) => args,
        Err(e) => return e.to_compile_error(),
    };
    let value = match args.value {
        Some(value) => value.into_token_stream(),
        None => quote!(1),
    };
    match args.name {
        Name::Literal(lit) => {
            // A bad name is an error, but the call still expands, so that the
            // value is type-checked and nothing else is reported.
            let error = name::check(&lit).err().map(|e| e.to_compile_error());
            let (site, method) = match kind {
                Kind::Count => (quote!(CounterSite), quote!(count)),
                Kind::Gauge => (quote!(GaugeSite), quote!(set)),
            };
            // The static is declared in a block of its own, so that the value
            // expression, outside it, cannot see (or be shadowed by) it.
            let call = quote_spanned! {value.span()=>
                ::graphyte::__private::#site::#method(
                    {
                        static __GRAPHYTE_SITE: ::graphyte::__private::#site =
                            ::graphyte::__private::#site::new(#lit);
                        &__GRAPHYTE_SITE
                    },
                    #value,
                )
            };
            quote! {{
                #error
                #call;
            }}
        }
        Name::Expr(name) => {
            let function = match kind {
                Kind::Count => quote!(count_dyn),
                Kind::Gauge => quote!(gauge_dyn),
            };
            let call = quote_spanned! {value.span()=>
                ::graphyte::__private::#function(&(#name), #value)
            };
            quote! {{ #call; }}
        }
    }
}

/// A function as `#[timed]` sees it: the signature parsed, the body kept as
/// tokens (so that a body with a syntax error is still handed to the
/// compiler, which then reports it at the user's line).
struct TimedFn {
    outer: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace: Brace,
    inner: Vec<Attribute>,
    body: TokenStream,
}

const NOT_A_FUNCTION: &str = "`#[timed]` can only be applied to a function";

impl Parse for TimedFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<TimedFn> {
        let outer = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let starts_fn = input.peek(Token![fn])
            || input.peek(Token![const])
            || input.peek(Token![async])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !starts_fn {
            return Err(input.error(NOT_A_FUNCTION));
        }
        let sig: Signature = input.parse()?;
        if input.peek(Token![;]) {
            return Err(syn::Error::new_spanned(
                &sig,
                "`#[timed]` needs the function's body: put it on the implementation, not on a declaration without a body",
            ));
        }
        let content;
        let brace = braced!(content in input);
        let inner = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        if !input.is_empty() {
            return Err(input.error(NOT_A_FUNCTION));
        }
        Ok(TimedFn {
            outer,
            vis,
            sig,
            brace,
            inner,
            body,
        })
    }
}

/// The error, followed by the item unchanged, so that the rest of the
/// program still compiles against it and only this error is reported.
fn error_with(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(item);
    tokens
}

/// `#[timed]` / `#[timed("name")]`.
pub(crate) fn timed(args: TokenStream, item: TokenStream) -> TokenStream {
    let args: TimedArgs = match syn::parse2(args) {
        Ok(args) => args,
        Err(e) => return error_with(e, item),
    };
    let func: TimedFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => return error_with(e, item),
    };
    if let Some(constness) = &func.sig.constness {
        return error_with(
            syn::Error::new(
                constness.span,
                "`#[timed]` cannot be used on a `const fn`: a const fn may run at compile time, where there is no clock and nowhere to send a metric",
            ),
            item,
        );
    }
    let site = match &args.name {
        Some(lit) => {
            if let Err(e) = name::check(lit) {
                return error_with(e, item);
            }
            quote!(::graphyte::__private::TimerSite::new(#lit))
        }
        None => {
            let function = func.sig.ident.unraw().to_string();
            quote!(::graphyte::__private::TimerSite::function(::core::module_path!(), #function))
        }
    };
    let guard = guard_stmt(&site);
    match expand_fn(func, &guard) {
        Ok(tokens) => tokens,
        Err(e) => error_with(e, item),
    }
}

/// `let __graphyte_timer = { static SITE = ...; SITE.start() };`
fn guard_stmt(site: &TokenStream) -> Stmt {
    let guard = Ident::new("__graphyte_timer", Span::mixed_site());
    syn::parse_quote! {
        let #guard = {
            static __GRAPHYTE_TIMER: ::graphyte::__private::TimerSite = #site;
            ::graphyte::__private::TimerSite::start(&__GRAPHYTE_TIMER)
        };
    }
}

fn expand_fn(func: TimedFn, guard: &Stmt) -> syn::Result<TokenStream> {
    let TimedFn {
        outer,
        vis,
        sig,
        brace,
        inner,
        body,
    } = func;
    let braced = |tokens: TokenStream| {
        let mut group = Group::new(Delimiter::Brace, tokens);
        group.set_span(brace.span.join());
        group
    };

    // `async fn`: the guard lives in the function's future, so it measures
    // from the first poll to completion, across every `.await`.
    // Plain fn: the guard is the body's first local, so it is dropped last,
    // on every way out: the end, `return`, `?` and a panic.
    // The user's statements follow it in the user's own braces, not in a
    // block of their own: a nested `{ 1 }` tail would make rustc warn
    // "unnecessary braces" on the user's line, and the body keeps the exact
    // meaning (edition, temporaries' scopes) it has without `#[timed]`.
    let plain = |body| {
        let body = guarded(body, guard);
        braced(quote!(#(#inner)* #body))
    };
    let timed_body = if sig.asyncness.is_some() {
        plain(body)
    } else {
        match async_shaped(&body, guard) {
            Shape::AsyncTail(stmts) => braced(quote!(#(#inner)* #(#stmts)*)),
            Shape::Other => match future_type(&sig.output) {
                Some(ty) => return Err(syn::Error::new_spanned(
                    ty,
                    "`#[timed]` cannot find the `async` block that makes this function's future, and timing the function would only time the future's creation; make it an `async fn`, or end it with `async move { ... }` or `Box::pin(async move { ... })`",
                )),
                None => plain(body),
            },
            // The compiler reports the syntax error; add nothing to it.
            Shape::Unparsable => plain(body),
        }
    };
    Ok(quote!(#(#outer)* #vis #sig #timed_body))
}

/// How a non-async function's body ends.
enum Shape {
    /// With an `async` block, bare, `Box::pin`ned or `.boxed()` (the
    /// `-> impl Future` and async-trait shapes): the statements, with the
    /// guard moved into that block, so that the future is timed rather than
    /// its creation.
    AsyncTail(Vec<Stmt>),
    /// Any other way.
    Other,
    /// The body does not parse.
    Unparsable,
}

fn async_shaped(body: &TokenStream, guard: &Stmt) -> Shape {
    let Ok(mut stmts) = Block::parse_within.parse2(body.clone()) else {
        return Shape::Unparsable;
    };
    let Some(Stmt::Expr(tail, None)) = stmts.last_mut() else {
        return Shape::Other;
    };
    let Some(block) = async_block(tail) else {
        return Shape::Other;
    };
    let stmts_of_block = &mut block.block.stmts;
    stmts_of_block.insert(leading_items(stmts_of_block), guard.clone());
    Shape::AsyncTail(stmts)
}

/// A body with the guard as its first statement: after the items (`use`,
/// `const`, `fn`, ...) it starts with, if any, which run nothing, so that
/// clippy's `items_after_statements` does not fire on the user's items.
/// A body that does not parse is left as it is, after the guard, for the
/// compiler to report.
fn guarded(body: TokenStream, guard: &Stmt) -> TokenStream {
    let Ok(stmts) = Block::parse_within.parse2(body.clone()) else {
        return quote!(#guard #body);
    };
    let (items, rest) = stmts.split_at(leading_items(&stmts));
    quote!(#(#items)* #guard #(#rest)*)
}

/// How many of the statements, from the first, are items.
fn leading_items(stmts: &[Stmt]) -> usize {
    stmts
        .iter()
        .take_while(|stmt| matches!(stmt, Stmt::Item(_)))
        .count()
}

fn async_block(expr: &mut Expr) -> Option<&mut ExprAsync> {
    match expr {
        Expr::Async(block) => Some(block),
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => {
            call.args.first_mut().and_then(async_block)
        }
        Expr::MethodCall(call)
            if call.args.is_empty() && (call.method == "boxed" || call.method == "boxed_local") =>
        {
            async_block(&mut call.receiver)
        }
        Expr::Paren(paren) => async_block(&mut paren.expr),
        Expr::Group(group) => async_block(&mut group.expr),
        _ => None,
    }
}

/// `Box::pin`, `std::boxed::Box::pin`, ... or a bare `pin`.
fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else { return false };
    let mut segments = path.path.segments.iter().rev();
    matches!(segments.next(), Some(last) if last.ident == "pin")
        && segments.next().is_none_or(|owner| owner.ident == "Box")
}

/// The return type, if it looks like a future: `impl Future<...>`,
/// `Pin<Box<dyn Future<...>>>`, or a type named `...Future` (`BoxFuture`).
fn future_type(output: &ReturnType) -> Option<&Type> {
    match output {
        ReturnType::Type(_, ty) if is_future(ty) => Some(ty),
        _ => None,
    }
}

fn is_future(ty: &Type) -> bool {
    let bound_is_future = |bound: &TypeParamBound| match bound {
        TypeParamBound::Trait(t) => t
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Future")),
        _ => false,
    };
    match ty {
        Type::ImplTrait(t) => t.bounds.iter().any(bound_is_future),
        Type::TraitObject(t) => t.bounds.iter().any(bound_is_future),
        Type::Paren(t) => is_future(&t.elem),
        Type::Group(t) => is_future(&t.elem),
        Type::Path(t) => t.path.segments.last().is_some_and(|last| {
            if last.ident.to_string().ends_with("Future") {
                return true;
            }
            let wrapper = last.ident == "Pin" || last.ident == "Box";
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return false;
            };
            wrapper
                && args.args.iter().any(|arg| match arg {
                    syn::GenericArgument::Type(inner) => is_future(inner),
                    _ => false,
                })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &str, item: &str) -> String {
        timed(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn plain_fns_get_a_guard_before_their_body() {
        let out = expand("\"db.query\"", "fn f(x: u32) -> u32 { x + 1 }");
        assert!(out.contains("TimerSite :: new (\"db.query\")"), "{out}");
        let guard = out.find("TimerSite :: start").unwrap();
        let body = out.find("x + 1").unwrap();
        assert!(guard < body, "{out}");
    }

    #[test]
    fn the_body_is_not_a_block_of_its_own() {
        // `{ guard; { 1 } }` would make rustc warn about the braces of `{ 1 }`.
        let out = expand("\"x\"", "fn f() -> u8 { 1 }");
        assert!(
            out.ends_with("TimerSite :: start (& __GRAPHYTE_TIMER) } ; 1 }"),
            "{out}"
        );
    }

    #[test]
    fn leading_items_stay_before_the_guard() {
        let out = expand(
            "\"x\"",
            "fn f() -> u8 { use a::b; const N: u8 = 1; let m = N; m }",
        );
        let guard = out.find("let __graphyte_timer").unwrap();
        assert!(out.find("use a :: b").unwrap() < guard, "{out}");
        assert!(out.find("const N").unwrap() < guard, "{out}");
        assert!(guard < out.find("let m").unwrap(), "{out}");
        let out = expand(
            "\"x\"",
            "fn f() -> impl Future<Output = u8> { async move { const N: u8 = 1; N } }",
        );
        assert!(
            out.find("const N").unwrap() < out.find("let __graphyte_timer").unwrap(),
            "{out}"
        );
    }

    #[test]
    fn inner_attributes_stay_first() {
        let out = expand("", "fn f() { #![allow(unused)] let x = 1; }");
        assert!(
            out.starts_with("fn f () { # ! [allow (unused)] let"),
            "{out}"
        );
        assert!(out.contains("module_path ! ()"), "{out}");
        assert!(out.contains("\"f\""), "{out}");
    }

    #[test]
    fn raw_identifiers_name_the_metric_without_r_hash() {
        let out = expand("", "fn r#match() {}");
        assert!(out.contains("\"match\""), "{out}");
    }

    #[test]
    fn async_trait_shapes_are_timed_inside_the_future() {
        for item in [
            "fn f(&self) -> Pin<Box<dyn Future<Output = u32> + Send + '_>> { Box::pin(async move { 1 }) }",
            "fn f() -> impl Future<Output = u32> { let a = 1; async move { a } }",
            "fn f() -> BoxFuture<'static, u32> { async move { 1 }.boxed() }",
        ] {
            let out = expand("\"x\"", item);
            let block = out.find("async move {").unwrap();
            let guard = out.find("TimerSite :: start").unwrap();
            assert!(block < guard, "{out}");
        }
    }

    #[test]
    fn futures_without_an_async_block_are_refused() {
        let out = expand("\"x\"", "fn f() -> impl Future<Output = ()> { other() }");
        assert!(out.contains("cannot find the `async` block"), "{out}");
        let out = expand(
            "\"x\"",
            "fn f() -> Pin<Box<dyn Future<Output = ()>>> { other() }",
        );
        assert!(out.contains("cannot find the `async` block"), "{out}");
        // Not futures: timed as plain functions.
        let out = expand("\"x\"", "fn f() -> Vec<u32> { other() }");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn box_pin_paths() {
        let path = |s: &str| syn::parse_str::<Expr>(s).unwrap();
        assert!(is_box_pin(&path("Box::pin")));
        assert!(is_box_pin(&path("::std::boxed::Box::pin")));
        assert!(is_box_pin(&path("pin")));
        assert!(!is_box_pin(&path("Arc::pin")));
        assert!(!is_box_pin(&path("Box::new")));
    }
}
