//! A stand-in for `celld shim STATE_DIR`, so this crate's integration tests
//! can start real shims without depending on the binary crate above them.

use std::path::Path;

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "shim" {
        cell_runtime::shim_main(Path::new(&args[2]));
    }
    eprintln!("usage: cell-shim-test shim STATE_DIR");
    std::process::exit(2);
}
