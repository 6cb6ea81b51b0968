//! The MiniK8s `kubectl`: the verbs people use every day, with the flags, columns and
//! messages of the real kubectl, as a library. [`run`] takes the arguments and the three
//! standard streams, so the binary is a few lines and tests run every verb in-process.
//!
//! One module per verb; `table`, `yaml`, `output` and `describe` hold the printers.

use std::ffi::OsString;
use std::io::{Read, Write};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

pub mod api_resources;
pub mod apply;
pub mod completion;
pub mod create;
pub mod create_data;
pub mod create_workloads;
pub mod delete;
pub mod describe;
pub mod error;
pub mod exec;
pub mod expose;
pub mod get;
pub mod hash;
pub mod logs;
pub mod manifests;
pub mod output;
pub mod resources;
pub mod rollout;
pub mod scale;
pub mod session;
pub mod set;
pub mod table;
pub mod tabwriter;
pub mod targets;
pub mod version;
pub mod wait;
pub mod watch_one;
pub mod yaml;

pub use error::{Error, Result};
pub use session::{ConnectionFlags, Io, Session};

/// kubectl controls the MiniK8s cluster.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl",
    about = "kubectl controls the MiniK8s cluster.",
    long_about = "kubectl controls the MiniK8s cluster: the Kubernetes core/v1 API served by the MiniK8s API server.",
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionFlags,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a resource from a file or from stdin.
    Create(create::CreateArgs),
    /// Apply a configuration to a resource by file name or stdin.
    Apply(apply::ApplyArgs),
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(describe::DescribeArgs),
    /// Delete resources by file names, stdin, resources and names, or by label selector.
    Delete(delete::DeleteArgs),
    /// Take a pod and expose it as a new Kubernetes service.
    Expose(expose::ExposeArgs),
    /// Set a new size for a deployment, replica set, replication controller, or stateful set.
    Scale(scale::ScaleArgs),
    /// Set specific features on objects.
    Set(set::SetArgs),
    /// Manage the rollout of a resource.
    Rollout(rollout::RolloutArgs),
    /// Experimental: Wait for a specific condition on one or many resources.
    Wait(wait::WaitArgs),
    /// Print the logs for a container in a pod.
    Logs(logs::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// Print the client and server version information.
    Version(version::VersionArgs),
    /// Print the supported API resources on the server.
    ApiResources(api_resources::ApiResourcesArgs),
    /// Output shell completion code for the specified shell (bash, zsh or fish).
    Completion(completion::CompletionArgs),
}

/// Runs kubectl with `args` (the program name first, as in `std::env::args_os`) and
/// returns the exit code: 0, or 1 after printing what went wrong to `stderr` (or the
/// exit code of the command `exec` ran).
pub async fn run(
    args: Vec<OsString>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let io = Io {
        stdin,
        out: stdout,
        err: stderr,
        process_stdin: false,
    };
    run_with(args, io).await
}

/// [`run`] with the streams given as [`Io`]: the binary says there that stdin is the
/// process's own.
pub async fn run_with(args: Vec<OsString>, mut io: Io<'_>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return report_usage(e, io.out, io.err),
    };
    let mut session = Session::new(cli.connection);
    let result = dispatch(cli.command, &mut session, &mut io).await;
    let flushed = io.out.flush();
    match result.and(flushed.map_err(Error::from)) {
        Ok(()) => 0,
        // The reader went away (`kubectl get pods | head`): nothing to tell it.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 1,
        Err(e) => {
            let _ = io.err.write_all(e.render().as_bytes());
            let _ = io.err.flush();
            e.exit_code()
        }
    }
}

async fn dispatch(command: Command, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    match command {
        Command::Create(args) => create::run(args, session, io).await,
        Command::Apply(args) => apply::run(args, session, io).await,
        Command::Get(args) => get::run(args, session, io).await,
        Command::Describe(args) => describe::run(args, session, io).await,
        Command::Delete(args) => delete::run(args, session, io).await,
        Command::Expose(args) => expose::run(args, session, io).await,
        Command::Scale(args) => scale::run(args, session, io).await,
        Command::Set(args) => set::run(args, session, io).await,
        Command::Rollout(args) => rollout::run(args, session, io).await,
        Command::Wait(args) => wait::run(args, session, io).await,
        Command::Logs(args) => logs::run(args, session, io).await,
        Command::Exec(args) => exec::run(args, session, io).await,
        Command::Version(args) => version::run(args, session, io).await,
        Command::ApiResources(args) => api_resources::run(args, session, io).await,
        Command::Completion(args) => completion::run(args, io),
    }
}

/// The clap command tree, for completion scripts.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Prints help (exit 0) or a usage error in kubectl's words (exit 1).
fn report_usage(e: clap::Error, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(stdout, "{}", e.render());
            let _ = stdout.flush();
            0
        }
        kind => {
            let context = |k: ContextKind| match e.get(k) {
                Some(ContextValue::String(s)) => Some(s.clone()),
                _ => None,
            };
            let message = match (kind, context(ContextKind::InvalidArg)) {
                (ErrorKind::UnknownArgument, Some(arg)) => {
                    let flag = arg.split('=').next().unwrap_or(&arg).to_string();
                    format!("error: unknown flag: {flag}\nSee 'kubectl --help' for usage.\n")
                }
                (ErrorKind::InvalidSubcommand, _)
                    if context(ContextKind::InvalidSubcommand).is_some() =>
                {
                    let cmd = context(ContextKind::InvalidSubcommand).unwrap_or_default();
                    format!(
                        "error: unknown command {cmd:?} for \"kubectl\"\n\nRun 'kubectl --help' for usage.\n"
                    )
                }
                _ => {
                    // clap's message, without its usage block.
                    let text = e.render().to_string();
                    let first = text.lines().next().unwrap_or("error: invalid arguments");
                    format!("{first}\nSee 'kubectl --help' for usage.\n")
                }
            };
            let _ = stderr.write_all(message.as_bytes());
            let _ = stderr.flush();
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn kubectl(args: &[&str]) -> (i32, String, String) {
        let mut argv: Vec<OsString> = vec!["kubectl".into()];
        argv.extend(args.iter().map(OsString::from));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(argv, &mut std::io::empty(), &mut out, &mut err).await;
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn unknown_flags_and_commands_read_like_kubectl() {
        let (code, _, err) = kubectl(&["get", "pods", "--bogus"]).await;
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "error: unknown flag: --bogus\nSee 'kubectl --help' for usage.\n"
        );
        let (code, _, err) = kubectl(&["frobnicate"]).await;
        assert_eq!(code, 1);
        assert!(
            err.starts_with("error: unknown command \"frobnicate\" for \"kubectl\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn help_goes_to_stdout() {
        let (code, out, _) = kubectl(&["--help"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("Usage: kubectl"), "{out}");
        let (code, out, _) = kubectl(&[]).await;
        assert_eq!(code, 0);
        assert!(out.contains("Commands:"), "{out}");
    }

    #[tokio::test]
    async fn exec_usage_mistakes_read_like_kubectl() {
        let (code, _, err) = kubectl(&["exec", "--", "ls"]).await;
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "error: pod, type/name or --filename must be specified\n"
        );
        let (code, _, err) = kubectl(&["exec", "web", "ls"]).await;
        assert_eq!(code, 1);
        assert!(
            err.starts_with("error: exec [POD] [COMMAND] is not supported anymore"),
            "{err}"
        );
        let (code, _, err) = kubectl(&["exec", "web"]).await;
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "error: you must specify at least one command for the container\n"
        );
    }
}
