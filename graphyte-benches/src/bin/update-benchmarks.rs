//! `update-benchmarks RESULTS_DIR DOCUMENT`: replaces the text between the
//! `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers of DOCUMENT
//! (BENCHMARKS.md) with `RESULTS_DIR/fragments/NAME.md`, which the benches
//! of this run wrote. `./scripts/bench` runs it after the benches; if any
//! marker lacks its fragment, the document is left as it was and the
//! command fails.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [results, document] = args.as_slice() else {
        eprintln!("usage: update-benchmarks RESULTS_DIR DOCUMENT");
        return ExitCode::from(2);
    };
    let fragments = PathBuf::from(results).join("fragments");
    let doc = match std::fs::read_to_string(document) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("cannot read {document}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spliced = graphyte_benches::splice(&doc, |name| {
        std::fs::read_to_string(fragments.join(format!("{name}.md"))).ok()
    });
    match spliced {
        Ok(text) => {
            if let Err(e) = std::fs::write(document, text) {
                eprintln!("cannot write {document}: {e}");
                return ExitCode::FAILURE;
            }
            println!(
                "{document}: tables replaced by this run's ({})",
                fragments.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{document} left as it was: {e}");
            ExitCode::FAILURE
        }
    }
}
