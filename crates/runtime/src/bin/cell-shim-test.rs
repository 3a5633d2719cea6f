//! A stand-in for `celld shim STATE_DIR`, so this crate's integration tests
//! can start real shims without depending on the binary crate above them.
//!
//! With `CELL_SHIM_TEST_IDLE` set it only waits for end of file on stdin:
//! a process with a supervisor's command line, for the tests of
//! `cell_runtime::process::find_shim`, that needs no root.

use std::io::Read;
use std::path::Path;

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "shim" {
        if std::env::var_os("CELL_SHIM_TEST_IDLE").is_some() {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        }
        cell_runtime::shim_main(Path::new(&args[2]));
    }
    eprintln!("usage: cell-shim-test shim STATE_DIR");
    std::process::exit(2);
}
