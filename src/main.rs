//! The `offsite` command. All the work is in the library; this maps outcomes to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    fixed_mmap_threshold();
    offsite::cli::main()
}

/// glibc raises its mmap threshold the first time a large block is freed, and from then on
/// keeps freed multipart parts (6 MiB) in per-thread arenas instead of returning them: peak RSS
/// of a 1 GiB S3 push measured 73 MiB that way, 51 MiB with the threshold fixed at 4 MiB. At
/// 4 MiB the pipeline's 1 MiB blocks still come from the arenas and are reused; at glibc's
/// initial 128 KiB every block would be mapped and unmapped (measured: a local push's system
/// time tripled). The threshold can only be fixed before the process starts (`mallopt` is
/// unsafe, which this workspace forbids), so offsite sets it and executes itself again, once.
fn fixed_mmap_threshold() {
    const VAR: &str = "MALLOC_MMAP_THRESHOLD_";
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    // `exec` returns only when it failed; then carry on with glibc's defaults.
    let _ = std::process::Command::new(exe)
        .arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| "offsite".into()),
        )
        .args(std::env::args_os().skip(1))
        .env(VAR, "4194304")
        .exec();
}
