#![doc = include_str!("../README.md")]

mod args;
mod expand;
mod name;

use proc_macro::TokenStream;

/// Times every call of a function.
///
/// ```
/// #[graphyte::timed("db.query")]
/// fn query(id: u64) -> Result<u64, String> {
///     if id == 0 {
///         return Err("no such row".into()); // timed too
///     }
///     Ok(id * 2)
/// }
///
/// # graphyte::init(graphyte::Config::new("localhost").transport(graphyte::CaptureTransport::new()))?;
/// # query(1).unwrap();
/// # Ok::<(), graphyte::Error>(())
/// ```
///
/// `#[timed]` without a name names the metric after the module path and
/// the function: `fn fetch` in `my_crate::db` is `my_crate.db.fetch` (built
/// once per function, on its first call). The name may carry inline Graphite
/// tags: `#[timed("db.query;db=users")]`.
///
/// # What lands in Graphite
/// Durations are in **milliseconds**.
///
/// * Interval mode, per interval, timestamped with the interval's start:
///   `NAME.count` (calls that finished in the interval), and if it is not 0
///   also `NAME.sum`, `NAME.min`, `NAME.max`, `NAME.mean`, `NAME.p50`,
///   `NAME.p90` and `NAME.p99`. An interval without calls sends only
///   `NAME.count 0`, so the other series have no point there rather than a
///   made-up one. The suffix goes on the path, before inline tags:
///   `db.query.p99;db=users`. Counts, sums, minimums and maximums are exact;
///   percentiles come from a log-bucketed histogram and are within 0.4 % of
///   the exact nearest-rank percentile (and within the exact min and max).
/// * Synchronous mode: one line per call, `NAME MS`, timestamped now.
/// * Before `graphyte::init`: nothing; the clock is not even read.
///
/// # What it expands to
/// The body is left as written, behind a guard that records the elapsed
/// time when it is dropped:
///
/// ```
/// fn query(id: u64) -> Result<u64, String> {
///     let __graphyte_timer = {
///         static __GRAPHYTE_TIMER: ::graphyte::__private::TimerSite =
///             ::graphyte::__private::TimerSite::new("db.query");
///         ::graphyte::__private::TimerSite::start(&__GRAPHYTE_TIMER)
///     };
///     {
///         // The body, unchanged.
///         if id == 0 {
///             return Err("no such row".into());
///         }
///         Ok(id * 2)
///     }
/// }
/// # assert_eq!(query(2), Ok(4));
/// ```
///
/// (`#[timed]` without a name uses
/// `TimerSite::function(::core::module_path!(), "query")` instead.)
///
/// So `return`, `?` and panics (while unwinding) are timed like a normal
/// return, and errors in the body are reported at the body's own lines. The
/// static site resolves its series in a process-wide registry on its first
/// call; after that a timed call is two clock reads (the CPU's time-stamp
/// counter, through `quanta`) and a few atomic operations, with no
/// allocation, lock or formatting.
///
/// * `async fn`: the guard is the first statement of the function's
///   future, so the time is from the first poll to completion, across every
///   `.await`. A future dropped before it completes records the time until
///   then.
/// * A plain fn that returns a future built by an `async` block at its end
///   (`-> impl Future` ending in `async move { ... }`, or the async-trait
///   shape `Box::pin(async move { ... })`, or `async move { ... }.boxed()`):
///   the guard goes inside that block, timing the future, not its creation.
///   A fn returning a future without such a block is a compile error rather
///   than a silently wrong timing.
/// * Methods with any `self`, generics and where clauses, trait impls,
///   `impl Trait` returns, destructured parameters and inner attributes work
///   unchanged; all calls of one function, whatever its type parameters,
///   share one series.
///
/// # Errors
/// A compile error, on the offending tokens: on a `const fn`, on anything
/// that is not a function with a body, on an argument that is not one string
/// literal, on a name graphyte would refuse:
///
/// ```compile_fail
/// #[graphyte::timed("db query")] // invalid metric name "db query": must not contain whitespace
/// fn query() {}
/// ```
#[proc_macro_attribute]
pub fn timed(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::timed(args.into(), item.into()).into()
}

/// Counts: adds an integer delta to a counter.
///
/// ```
/// # graphyte::init(graphyte::Config::new("localhost").transport(graphyte::CaptureTransport::new()))?;
/// let buf = [0u8; 512];
/// graphyte::count!("requests", 1);
/// graphyte::count!("bytes.in", buf.len());       // any integer type
/// graphyte::count!("requests;env=prod");         // the delta defaults to 1
/// let shard = 3;
/// graphyte::count!(format!("shard.{shard}.hits"), 1); // a name checked at run time
/// # Ok::<(), graphyte::Error>(())
/// ```
///
/// # What lands in Graphite
/// * Interval mode: `NAME SUM` once per interval, timestamped with the
///   interval's start: the exact sum of the deltas of the calls made in that
///   interval, from every thread and every call site with that name, and `0`
///   for a counter that saw no calls (once it has seen one). Deltas are
///   summed as `i64`.
/// * Synchronous mode: `NAME DELTA` per call, timestamped now.
/// * Before `graphyte::init`: nothing (the delta expression is still
///   evaluated).
///
/// # What it expands to
/// With a literal name:
///
/// ```
/// {
///     ::graphyte::__private::CounterSite::count(
///         {
///             static __GRAPHYTE_SITE: ::graphyte::__private::CounterSite =
///                 ::graphyte::__private::CounterSite::new("requests");
///             &__GRAPHYTE_SITE
///         },
///         1,
///     );
/// }
/// ```
///
/// The site resolves its counter once; then a call is a load of the mode, a
/// load of the handle and one atomic add. With any other name expression,
/// `::graphyte::__private::count_dyn(&(name), delta)` looks the counter up by
/// name on every call (a read lock and a hash): prefer literals on hot paths.
///
/// # Errors
/// A literal name graphyte would refuse, or a delta that is not an integer
/// (see [`CountDelta`](https://docs.rs/graphyte/latest/graphyte/trait.CountDelta.html)),
/// is a compile error:
///
/// ```compile_fail
/// graphyte::count!("requests;env", 1); // invalid tag "env"="" ...: tag must have the form key=value
/// ```
/// ```compile_fail
/// graphyte::count!("load", 0.5); // `count!` takes an integer delta, not `f64`
/// ```
#[proc_macro]
pub fn count(input: TokenStream) -> TokenStream {
    expand::count(input.into()).into()
}

/// Records the current value of something that goes up and down.
///
/// ```
/// # graphyte::init(graphyte::Config::new("localhost").transport(graphyte::CaptureTransport::new()))?;
/// let queue = vec![1, 2, 3];
/// graphyte::gauge!("queue.depth", queue.len());
/// graphyte::gauge!("cpu.load;host=web1", 0.75);
/// # Ok::<(), graphyte::Error>(())
/// ```
///
/// # What lands in Graphite
/// * Interval mode: `NAME VALUE` every interval, timestamped with the
///   interval's start: the latest value set (by any call site with that
///   name), repeated every interval until it changes. Values are kept as
///   `f64`, exact for integers up to 2^53; NaN and infinities are refused
///   (logged once per name).
/// * Synchronous mode: `NAME VALUE` per call, timestamped now.
/// * Before `graphyte::init`: nothing.
///
/// # What it expands to
/// Like [`count!`] with `GaugeSite::set` instead of `CounterSite::count`
/// (`gauge_dyn` for names that are not literals): one load of the mode, one
/// of the handle, and one atomic store.
///
/// # Errors
/// ```compile_fail
/// graphyte::gauge!("queue.depth"); // missing value
/// ```
#[proc_macro]
pub fn gauge(input: TokenStream) -> TokenStream {
    expand::gauge(input.into()).into()
}
