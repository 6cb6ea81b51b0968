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
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    let code = runtime.block_on(minik8s_kubectl::run(
        std::env::args_os().collect(),
        &mut stdin,
        &mut stdout,
        &mut stderr,
    ));
    let _ = stdout.flush();
    drop(stdout);
    std::process::exit(code);
}
