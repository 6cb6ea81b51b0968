//! `kubectl`: the MiniK8s command-line client. All of it lives in the `minik8s-kubectl`
//! library; this only connects it to the process's arguments and streams.

use std::io::{BufWriter, Write};

fn main() {
    // One thread is plenty for a command-line client, and starts fastest.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    // Stdin stays unlocked: exec reads it on a thread of its own.
    let mut stdin = std::io::stdin();
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    let io = minik8s_kubectl::Io {
        stdin: &mut stdin,
        out: &mut stdout,
        err: &mut stderr,
        process_stdin: true,
    };
    let code = runtime.block_on(minik8s_kubectl::run_with(std::env::args_os().collect(), io));
    let _ = stdout.flush();
    drop(stdout);
    std::process::exit(code);
}
