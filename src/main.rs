//! The `offsite` command. All the work is in the library; this maps outcomes to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    offsite::cli::main()
}
