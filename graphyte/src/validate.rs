//! The name and tag rules: one definition, in the `graphyte-validate` crate,
//! which `graphyte-macros` uses too, so that a literal name refused at compile
//! time is refused with the same words as at run time.

pub use graphyte_validate::*;
